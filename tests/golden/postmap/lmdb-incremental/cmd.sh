# -i reads source lines from stdin and adds them to an existing table.
# Duplicates warn and keep the old value; -r replaces; -w keeps silently.
# Syntax warnings name "stdin, line N".
run postmap -c . lmdb:table
run_in add1 postmap -c . -i lmdb:table
run postmap -c . -s lmdb:table
run_in add2 postmap -c . -i -r lmdb:table
run postmap -c . -s lmdb:table
run_in add3 postmap -c . -i -w lmdb:table
run postmap -c . -s lmdb:table
# -i on a table that does not exist yet creates it.
run_in add2 postmap -c . -i lmdb:fresh
run postmap -c . -s lmdb:fresh
