# main.cf syntax as postconf reads it (see main.cf for the oddities)
run postconf -c . -n
run postconf -c . -n -f
run postconf -c . myorigin
run postconf -c . mydestination
run postconf -c . relayhost
run postconf -c . relay_domains
run postconf -c . smtpd_banner
run postconf -c . home_mailbox
run postconf -c . alias_maps
run postconf -c . alias_database
run postconf -c . mailbox_command
run postconf -c . smtpd_helo_restrictions
run postconf -c . recipient_delimiter
run postconf -c . smtpd_recipient_restrictions
run postconf -c . -f smtpd_recipient_restrictions
run postconf -c . mailbox_size_limit
run postconf -c . -h mydestination
run postconf -c . -h smtpd_banner
run postconf -c . -h mailbox_command
run postconf -c . -x relay_domains
run postconf -c . myorigin relayhost mailbox_size_limit
