# A new database file inherits the source file's permission bits; with -p it
# gets 0644 (postmap sets its own umask 022, ignoring the caller's). An
# existing database file keeps its mode when rebuilt.
umask 077
chmod 640 table
run postmap -c . lmdb:table
run stat -c '%a %n' table table.lmdb
run postmap -c . cdb:table
run stat -c '%a %n' table.cdb
rm -f table.lmdb table.cdb
run postmap -c . -p lmdb:table
run postmap -c . -p cdb:table
run stat -c '%a %n' table.lmdb table.cdb
chmod 600 table.lmdb
run postmap -c . lmdb:table
run stat -c '%a %n' table.lmdb
run postmap -c . -o lmdb:table
run postmap -c . -q k lmdb:table
