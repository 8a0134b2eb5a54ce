# Several names in one -d command: printed in argument order.
run postconf -c . -d smtpd_timeout maximal_queue_lifetime message_size_limit
run postconf -c . -d -h smtpd_timeout maximal_queue_lifetime message_size_limit
run postconf -c . -d -x smtpd_timeout maximal_queue_lifetime message_size_limit
run postconf -c . smtpd_timeout maximal_queue_lifetime message_size_limit
run postconf -c . message_size_limit smtpd_timeout
run postconf -c . -d message_size_limit message_size_limit
