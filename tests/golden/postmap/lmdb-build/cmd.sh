# Build an lmdb table: warnings name the map as "lmdb:table" (no line number)
# for duplicates but "table, line N" for syntax; only table.lmdb appears (no
# -lock file, no subdirectory). Keys are folded to lower case when stored.
run postmap -c . lmdb:table
run ls
run postmap -c . -q info@example.com lmdb:table
run postmap -c . -q INFO@EXAMPLE.COM lmdb:table
run postmap -c . -q sales@example.com lmdb:table
run postmap -c . -q long@example.com lmdb:table
run postmap -c . -q novalue lmdb:table
run postmap -c . -q nobody@example.com lmdb:table
run postmap -c . -f -q INFO@EXAMPLE.COM lmdb:table
# A database older than its source (source changed more than 100 s ago).
run touch -d '2 hours ago' table.lmdb
run postmap -c . -q info@example.com lmdb:table
# Rebuilding replaces the contents.
run postmap -c . lmdb:table
run postmap -c . -q info@example.com lmdb:table
