# The YP_* keys are stored in upper case and without NUL; a plain -q folds
# the key to lower case and misses them, -f -q finds them. "@" maps to "@".
# (masked replaces the 10-digit YP_LAST_MODIFIED time stamp with N's.)
masked() { "$@" >"$RUN_TMP/masked"; st=$?; sed -e "/YP_LAST_MODIFIED/s/[0-9]\{10\}/NNNNNNNNNN/" -e "s/^[0-9]\{10\}$/NNNNNNNNNN/" "$RUN_TMP/masked"; return $st; }
run postalias -c . lmdb:aliases
run postalias -c . -q @ lmdb:aliases
run postalias -c . -q YP_MASTER_NAME lmdb:aliases
run postalias -c . -f -q YP_MASTER_NAME lmdb:aliases
run postalias -c . -f -N -q YP_MASTER_NAME lmdb:aliases
run postalias -c . -f -n -q YP_MASTER_NAME lmdb:aliases
run masked postalias -c . -f -q YP_LAST_MODIFIED lmdb:aliases
run masked postalias -c . -s lmdb:aliases
