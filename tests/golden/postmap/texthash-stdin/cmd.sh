# -q - reads one key per line from stdin and prints "key<TAB>value" for each
# hit, with the key as it was typed (not folded). Exit 0 if any key was found.
run_in keys postmap -c . -q - texthash:table
run_in keys postmap -c . -f -q - texthash:table
run_in misses postmap -c . -q - texthash:table
run_in empty postmap -c . -q - texthash:table
