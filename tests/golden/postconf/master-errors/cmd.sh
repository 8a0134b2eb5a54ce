# master.cf syntax errors: some are fatal (with file and line number, or with
# the offending text), some are warnings, some are accepted as is.
run postconf -c . -M
run postconf -c . -n
run postconf -c . -d mail_name
cp -p bad-type.cf master.cf
run postconf -c . -M
cp -p bad-private.cf master.cf
run postconf -c . -M
cp -p bad-unpriv.cf master.cf
run postconf -c . -M
cp -p bad-chroot.cf master.cf
run postconf -c . -M
cp -p bad-wakeup.cf master.cf
run postconf -c . -M
cp -p bad-wakeup2.cf master.cf
run postconf -c . -M
cp -p bad-maxproc.cf master.cf
run postconf -c . -M
cp -p missing-brace.cf master.cf
run postconf -c . -M
cp -p leading-ws.cf master.cf
run postconf -c . -M
cp -p bad-o.cf master.cf
run postconf -c . -M
cp -p dup-entry.cf master.cf
run postconf -c . -M
cp -p third-line.cf master.cf
run postconf -c . -M
cp -p bad-o.cf master.cf
run postconf -c . -P
run postconf -c . -F submission/inet/command
