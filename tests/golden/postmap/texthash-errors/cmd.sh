# texthash is read-only: no bulk build, no -i, no -d; a missing file.
run postmap -c . -q k texthash:missing
run postmap -c . -s texthash:missing
run postmap -c . texthash:table
run_in table postmap -c . -i texthash:table
run postmap -c . -d k texthash:table
