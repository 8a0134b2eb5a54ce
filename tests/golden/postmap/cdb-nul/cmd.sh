# NUL termination in cdb. By default postmap stores cdb keys and values
# WITHOUT a trailing NUL (unlike lmdb); -N adds one. cdbdump.py prints the
# records in file order as Python byte literals (insertion order).
run postmap -c . cdb:table
run python3 cdbdump.py table.cdb
run postmap -c . -q key cdb:table
run postmap -c . -N -q key cdb:table
run postmap -c . -n -q key cdb:table
run postmap -c . -N cdb:table
run python3 cdbdump.py table.cdb
run postmap -c . -q key cdb:table
run postmap -c . -N -q key cdb:table
run postmap -c . -n -q key cdb:table
run postmap -c . -n cdb:table
run python3 cdbdump.py table.cdb
