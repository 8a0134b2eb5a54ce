# -s on lmdb lists entries in LMDB key order (bytewise, memcmp), keys as
# stored (folded unless built with -f). The trailing NUL is not printed.
run postmap -c . lmdb:table
run postmap -c . -s lmdb:table
run postmap -c . -f lmdb:table
run postmap -c . -s lmdb:table
run postmap -c . -s lmdb:missing
