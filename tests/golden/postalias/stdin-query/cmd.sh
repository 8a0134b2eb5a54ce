# postalias -q - prints "key:<TAB>value" (note the colon) per hit, the key as
# typed; exit 0 if any key was found. -q KEY prints just the value.
run postalias -c . lmdb:aliases
run_in keys postalias -c . -q - lmdb:aliases
run_in misses postalias -c . -q - lmdb:aliases
run_in keys postalias -c . -f -q - lmdb:aliases
