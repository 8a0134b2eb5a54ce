# Run as root (as on every machine of this project): postmap switches to the
# owner of the source file before it writes the database, so a table owned by
# nobody cannot be built in a directory only root may write; -o keeps root
# privileges. (The harness's temporary directory is mode 0700, root-owned.)
chown nobody table
run postmap -c . lmdb:table
run ls
run postmap -c . -o lmdb:table
run stat -c '%U %n' table table.lmdb
run postmap -c . -q k lmdb:table
