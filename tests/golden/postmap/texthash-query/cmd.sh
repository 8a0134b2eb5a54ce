# texthash: hits, misses (exit 1), case folding of the stored key and of the
# query, and -f (no folding) in both directions.
run postmap -c . -q alice texthash:table
run postmap -c . -q ALICE texthash:table
run postmap -c . -q Bob texthash:table
run postmap -c . -q carol texthash:table
run postmap -c . -q nobody texthash:table
run postmap -c . -f -q alice texthash:table
run postmap -c . -f -q Alice texthash:table
run postmap -c . -f -q BOB texthash:table
run postmap -c . -f -q bob texthash:table
run postmap -c . -f -q carol texthash:table
