# Build a cdb table: only table.cdb appears. Duplicate warnings name the
# source file without "cdb:" and without a line number. cdb is read-only
# once built: -s, -d and -i are fatal errors.
run postmap -c . cdb:table
run ls
run postmap -c . -q info@example.com cdb:table
run postmap -c . -q INFO@EXAMPLE.COM cdb:table
run postmap -c . -q sales@example.com cdb:table
run postmap -c . -q novalue cdb:table
run postmap -c . -q nobody cdb:table
run postmap -c . -s cdb:table
run postmap -c . -d info@example.com cdb:table
run_in table postmap -c . -i cdb:table
run touch -d '2 hours ago' table.cdb
run postmap -c . -q info@example.com cdb:table
