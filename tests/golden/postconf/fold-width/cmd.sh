# -f folds main.cf values at whitespace when a line would exceed 80
# characters (80 fits), continuation lines indented by 4 spaces; -Mf/-Ff fold
# master.cf entries when a line would reach 80 (79 fits). -n and -h print
# whitespace runs as one space, also inside quotes.
run postconf -c . -n
run postconf -c . -nf
run postconf -c . -f mail_name smtpd_banner relay_domains relocated_maps
run postconf -c . -hf relay_domains
run postconf -c . -h myorigin
run postconf -c . -M
run postconf -c . -Mf
run postconf -c . -Ff x80/unix/command x81/unix/command
