# Quoted alias names: the quotes are removed from the stored key, spaces and
# "@" are allowed inside, \" is an escaped quote; an unbalanced quote
# swallows the colon ("need name:value pair").
masked() { "$@" >"$RUN_TMP/masked"; st=$?; sed -e "/YP_LAST_MODIFIED/s/[0-9]\{10\}/NNNNNNNNNN/" -e "s/^[0-9]\{10\}$/NNNNNNNNNN/" "$RUN_TMP/masked"; return $st; }
run postalias -c . lmdb:aliases
run postalias -c . -q 'a b' lmdb:aliases
run postalias -c . -q '"a b"' lmdb:aliases
run postalias -c . -q quoted lmdb:aliases
run postalias -c . -q 'mixed case' lmdb:aliases
run postalias -c . -q 'with@at' lmdb:aliases
run postalias -c . -q 'x"y' lmdb:aliases
run postalias -c . -q 'colon:in' lmdb:aliases
run masked postalias -c . -s lmdb:aliases
