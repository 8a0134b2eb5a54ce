# Raw values, then each one expanded, with and without the name.
run postconf -c . -n
run postconf -c . -x p_plain
run postconf -c . -h -x p_plain
run postconf -c . -x p_brace
run postconf -c . -h -x p_brace
run postconf -c . -x p_paren
run postconf -c . -h -x p_paren
run postconf -c . -x p_q
run postconf -c . -h -x p_q
run postconf -c . -x p_c
run postconf -c . -h -x p_c
run postconf -c . -x p_qb
run postconf -c . -h -x p_qb
run postconf -c . -x p_cb
run postconf -c . -h -x p_cb
run postconf -c . -x p_qc
run postconf -c . -h -x p_qc
run postconf -c . -x p_q_empty
run postconf -c . -h -x p_q_empty
run postconf -c . -x p_c_empty
run postconf -c . -h -x p_c_empty
run postconf -c . -x p_qb_empty
run postconf -c . -h -x p_qb_empty
run postconf -c . -x p_cb_empty
run postconf -c . -h -x p_cb_empty
run postconf -c . -x p_qc_empty
run postconf -c . -h -x p_qc_empty
run postconf -c . -x p_nested
run postconf -c . -h -x p_nested
run postconf -c . -x p_nested_b
run postconf -c . -h -x p_nested_b
run postconf -c . -x p_dollar
run postconf -c . -h -x p_dollar
run postconf -c . -x p_mixed
run postconf -c . -h -x p_mixed
run postconf -c . -x p_eq
run postconf -c . -h -x p_eq
run postconf -c . -x p_ne
run postconf -c . -h -x p_ne
run postconf -c . -x p_lt
run postconf -c . -h -x p_lt
run postconf -c . -x p_le
run postconf -c . -h -x p_le
run postconf -c . -x p_level
run postconf -c . -h -x p_level
run postconf -c . -x p_chain
run postconf -c . -h -x p_chain
run postconf -c . -x mail_name
run postconf -c . -h -x mail_name
run postconf -c . -x -n
run postconf -c . -h p_dollar
run postconf -c . -x p_plain p_q_empty p_c_empty
