# Default type (hash: aliases.db), missing files, usage errors, and a
# texthash "alias" table (read in postmap format, with a warning per line).
run postalias -c . aliases
run ls
run postalias -c . -q root aliases
run postalias -c . -q root lmdb:nosuch
run postalias -c . -q root cdb:nosuch
run postalias -c . lmdb:nosuch
run postalias -c . -z
run postalias -c .
run postalias -c . -q
run postalias -c . -q root -d root lmdb:aliases
run postalias -c . -q root foo:bar
run postalias -c . -q root texthash:aliases
run postalias -c . -q root: texthash:aliases
run postalias -c . -q root inline:{root=x}
