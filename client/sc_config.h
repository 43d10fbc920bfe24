/*  sc_config: secchat's configuration file, CONFIG/config.

    One setting a line, `key = value`; blank lines and lines whose first
    non-blank character is `#` are ignored. The keys are those of the
    command-line options a user sets once: endpoint, user, key, ca,
    broker-name, bell, history. Every line is checked: an unknown key, a
    line without `=`, an empty or invalid value or a key given twice is
    an error that names the file and the line. A file that does not
    exist is an empty configuration, not an error.

    `key` and `ca` are paths: `~/` at their start is $HOME, and a
    relative path is relative to the directory of the file.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_CONFIG_H_INCLUDED
#define SC_CONFIG_H_INCLUDED

#include <stddef.h>

typedef struct _sc_config_t sc_config_t;

/* Reads path. The configuration (empty when the file does not exist),
   or NULL with one line in err ("PATH:LINE: what is wrong", or
   "PATH: why it cannot be read"). */
sc_config_t *sc_config_load (const char *path, char *err, size_t err_size);
void sc_config_destroy (sc_config_t **self_p);

/* The value of key ("endpoint", "user", "key", "ca", "broker-name",
   "bell", "history"), with the paths resolved as above; NULL when the
   file does not set it. Borrowed: valid until the configuration is
   destroyed. */
const char *sc_config_get (const sc_config_t *self, const char *key);

#endif
