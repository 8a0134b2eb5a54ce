# postalias runs each value through the RFC 822 tokenizer and writes it back
# out: whitespace collapses, ", " separates list members, backslash escapes
# drop, group syntax and ";" are re-spaced, case is kept; names fold.
masked() { "$@" >"$RUN_TMP/masked"; st=$?; sed -e "/YP_LAST_MODIFIED/s/[0-9]\{10\}/NNNNNNNNNN/" -e "s/^[0-9]\{10\}$/NNNNNNNNNN/" "$RUN_TMP/masked"; return $st; }
run postalias -c . lmdb:aliases
run masked postalias -c . -s lmdb:aliases
run postalias -c . -q upper lmdb:aliases
run postalias -c . -q trailing lmdb:aliases
