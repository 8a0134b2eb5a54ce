# A non-comment line without '=' is fatal (with file and line number) for
# everything that reads main.cf; -d does not read main.cf.
run postconf -c . -n
run postconf -c . myorigin
run postconf -c . -M smtp/inet
run postconf -c . -d mail_name
cp -p no-name.cf main.cf
run postconf -c . -n
cp -p space-in-name.cf main.cf
run postconf -c . -n
cp -p continued.cf main.cf
run postconf -c . -n
cp -p multi-line.cf main.cf
run postconf -c . -n
