# NUL termination in postalias output. cdb: aliases stored without NUL by
# default, with NUL under -N; lmdb: with NUL by default, without under -n.
# The YP_LAST_MODIFIED and YP_MASTER_NAME records never have a NUL, "@" does
# follow the flags. cdbdump.py prints cdb records in file order.
masked() { "$@" >"$RUN_TMP/masked"; st=$?; sed -e "/YP_LAST_MODIFIED/s/[0-9]\{10\}/NNNNNNNNNN/" -e "s/^[0-9]\{10\}$/NNNNNNNNNN/" "$RUN_TMP/masked"; return $st; }
run postalias -c . cdb:aliases
run masked python3 cdbdump.py aliases.cdb
run postalias -c . -N cdb:aliases
run masked python3 cdbdump.py aliases.cdb
run postalias -c . -q root cdb:aliases
run postalias -c . -n -q root cdb:aliases
run postalias -c . -n cdb:aliases
run postalias -c . -N -q root cdb:aliases
run postalias -c . lmdb:aliases
run postalias -c . -N -q root lmdb:aliases
run postalias -c . -n -q root lmdb:aliases
run postalias -c . -n lmdb:aliases
run postalias -c . -N -q root lmdb:aliases
run postalias -c . -n -q root lmdb:aliases
