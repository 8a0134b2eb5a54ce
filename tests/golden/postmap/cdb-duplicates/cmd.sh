# Duplicate handling when building cdb: default warns and keeps the first,
# -r keeps the last, -w keeps the first silently. Only one record per key
# is written.
run postmap -c . cdb:table
run postmap -c . -q k cdb:table
run python3 cdbdump.py table.cdb
run postmap -c . -r cdb:table
run postmap -c . -q k cdb:table
run python3 cdbdump.py table.cdb
run postmap -c . -w cdb:table
run postmap -c . -q k cdb:table
run postmap -c . -f cdb:table
run python3 cdbdump.py table.cdb
