# A $name loop is fatal for every command that reads main.cf (postconf scans
# all values for $name references), not only for -x.
run postconf -c . -n
run postconf -c . relayhost
run postconf -c . -x myorigin
run postconf -c . -M smtp/inet
run postconf -c . -d myorigin
cp -p user-loop.cf main.cf
run postconf -c . -n
run postconf -c . mail_name
run postconf -c . -x mail_name
run postconf -c . -d mail_name
cp -p self-loop.cf main.cf
run postconf -c . -n
run postconf -c . -x smtpd_banner
cp -p unreached-loop.cf main.cf
run postconf -c . -n
run postconf -c . -x p1
