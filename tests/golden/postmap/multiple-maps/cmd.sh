# Several maps on one command line: a build builds each; -q searches them in
# order and prints the first hit; -q - does that per key; -d deletes from
# every map; -s and -i use only the first map.
run postmap -c . lmdb:one lmdb:two
run postmap -c . -q a lmdb:one lmdb:two
run postmap -c . -q a lmdb:two lmdb:one
run postmap -c . -q b lmdb:one lmdb:two
run postmap -c . -q a texthash:two lmdb:one
printf 'a\nb\nc\n' > keys
run_in keys postmap -c . -q - lmdb:one lmdb:two
run postmap -c . -s lmdb:one lmdb:two
printf 'x 9\n' > add
run_in add postmap -c . -i lmdb:one lmdb:two
run postmap -c . -s lmdb:two
run postmap -c . -d a lmdb:one lmdb:two
run postmap -c . -s lmdb:one
run postmap -c . -s lmdb:two
run postmap -c . -d b lmdb:one lmdb:two
run postmap -c . -d nothere lmdb:one lmdb:two
