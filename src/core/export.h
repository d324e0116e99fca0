/* The administrator's backup (SPEC §9 `export csv`): every escrowed key, in
 * every state, with its device, volume and recovery password in clear text.
 * Every export is a record in the audit chain, committed before the first
 * password is written. */
#ifndef KW_CORE_EXPORT_H
#define KW_CORE_EXPORT_H

#include <stddef.h>
#include <stdio.h>

#include "core/seal.h"
#include "store/store.h"

#define EXPORT_CSV_HEADER "device_id,device_name,domain,volume_id,mount,key_id," \
	"recovery_password,state,created_at,disclosed_at"

/* Writes the header row and one row per key to out, CRLF line ends. In one
 * read snapshot of s: first checks that every key decrypts with k
 * (KW_ERR_CRYPTO, msg naming the key, and nothing written otherwise); then
 * commits an audit record (who's source, actor and client; result exported;
 * comment "N keys to DEST", N counted in that snapshot); then writes the rows
 * of the same snapshot, so N is what is written. When the record cannot be
 * committed nothing is written and the store's error is returned. When
 * writing fails after it (KW_ERR_IO), the record stands: it says what was
 * handed out at most. *rows gets the rows written; msg says why on failure. */
int export_csv(struct store *s, const struct seal *k, const struct audit_rec *who,
	       const char *dest, FILE *out, size_t *rows, char *msg, size_t msglen);

#endif
