# -d deletes a key (folded like a query); exit 0 if it was found, 1 if not.
run postmap -c . lmdb:table
run postmap -c . -d beta lmdb:table
run postmap -c . -d beta lmdb:table
run postmap -c . -d ALPHA lmdb:table
run postmap -c . -d nothere lmdb:table
run postmap -c . -s lmdb:table
run postmap -c . -q alpha lmdb:table
