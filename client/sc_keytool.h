/*  sc_keytool: secchat's key subcommands, as ssh-keygen users expect them.

      secchat keygen [--user NAME] [--out DIR] [--password-file FILE]
      secchat passwd KEYFILE [--password-file OLD] [--new-password-file NEW]
      secchat fingerprint FILE [--password-file FILE]

    keygen makes an Ed25519 key, DIR/NAME.key (mode 0600, encrypted
    PKCS#8 as sc_key_private_pem writes it), never over an existing one,
    and DIR/NAME.pub for the broker's administrator, and prints the
    fingerprint. passwd re-encrypts a key under a new password: the same
    key, written to a temporary file, synced and renamed over the old
    one, so the old file is never left half written. fingerprint prints
    the fingerprint of a public or private key file as /fingerprint
    shows it. Passwords are asked on the terminal with echo off (a new
    one twice), or read from the first line of a file; they are wiped
    after use.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at https://mozilla.org/MPL/2.0/.
*/
#ifndef SC_KEYTOOL_H_INCLUDED
#define SC_KEYTOOL_H_INCLUDED

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

/* True when word names a subcommand. */
bool sc_keytool_is_command (const char *word);

/* Runs the subcommand argv[0] with its arguments. user (NULL: none) is
   keygen's default name and dir (CONFIG) its default directory. Results
   on standard output, messages on standard error. The exit status: 0,
   1 on failure, 2 for bad arguments. */
int sc_keytool_main (int argc, char *argv[], const char *user, const char *dir);

/* Asks on the terminal tty with echo off: echo goes off first, then the
   prompt is written, so nothing typed as soon as it shows is echoed or
   flushed. The terminal is restored on every path; a signal interrupts
   read() (no SA_RESTART) and, once its handler has set *stop, ends the
   question. 0, or -1 on end of input, an error or a signal (password
   wiped then). Used by the key subcommands and by secchat's login. */
int sc_keytool_ask (int tty, const char *prompt, char *password, size_t size,
                    volatile sig_atomic_t *stop);

#endif
