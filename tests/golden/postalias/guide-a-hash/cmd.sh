# The aliases file of guide (a), built as hash:aliases. postalias adds
# "@: @" (sendmail) plus YP_LAST_MODIFIED (a 10-digit time stamp, masked
# here) and YP_MASTER_NAME (myhostname), the YP keys upper case.
masked() { "$@" >"$RUN_TMP/masked"; st=$?; sed -e "/YP_LAST_MODIFIED/s/[0-9]\{10\}/NNNNNNNNNN/" -e "s/^[0-9]\{10\}$/NNNNNNNNNN/" "$RUN_TMP/masked"; return $st; }
masked_sorted() { masked "$@" >"$RUN_TMP/ms"; st=$?; sort "$RUN_TMP/ms"; return $st; }
run postalias -c . hash:aliases
run ls
run postalias -c . -q root hash:aliases
run postalias -c . -q ROOT hash:aliases
run postalias -c . -q MAILER-DAEMON hash:aliases
run postalias -c . -q mailer-daemon hash:aliases
run postalias -c . -q bin hash:aliases
run postalias -c . -q nobody hash:aliases
run postalias -c . -q @ hash:aliases
# Rostfix stores hash: as lmdb, so -s is compared sorted.
run masked_sorted postalias -c . -s hash:aliases
