# Rejected -e requests leave main.cf untouched.
run postconf -c . -e relayhost
run postconf -c . -e '=x'
run postconf -c . -e '#relayhost = x'
run postconf -c . -e '  # relayhost = x'
run postconf -c . -e
run postconf -c . -e -n relayhost=x
run cat main.cf
rm main.cf
run postconf -c . -e relayhost=x
run ls
