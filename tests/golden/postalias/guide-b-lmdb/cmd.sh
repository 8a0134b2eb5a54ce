# The aliases file of guide (b), built as lmdb:aliases. postalias adds
# "@: @" (sendmail) plus YP_LAST_MODIFIED (a 10-digit time stamp, masked
# here) and YP_MASTER_NAME (myhostname), the YP keys upper case.
masked() { "$@" >"$RUN_TMP/masked"; st=$?; sed -e "/YP_LAST_MODIFIED/s/[0-9]\{10\}/NNNNNNNNNN/" -e "s/^[0-9]\{10\}$/NNNNNNNNNN/" "$RUN_TMP/masked"; return $st; }
run postalias -c . lmdb:aliases
run ls
run postalias -c . -q root lmdb:aliases
run postalias -c . -q Postmaster lmdb:aliases
run postalias -c . -q nobody lmdb:aliases
run postalias -c . -q @ lmdb:aliases
run masked postalias -c . -s lmdb:aliases
