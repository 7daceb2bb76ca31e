"""The door access card: mutual authentication with a door, then a MACed permission.

AID F0 4B 4F 41 4C 41 02 01: F0 is the ISO/IEC 7816-5 category of unregistered
proprietary AIDs, 4B 4F 41 4C 41 is "KOALA" as in every band-made AID, 02 the
access load file, 01 its module (one instance, named as its module).

=====  ====  =============================  =====  ==========================================
CLA    INS   command                        P1 P2  data -> response data
=====  ====  =============================  =====  ==========================================
00     A4    SELECT (by AID, the runtime)   04 00  AID -> FCI 6F (84 AID, A5 (9F08 version))
80     88    AUTHENTICATE: door challenge   00 00  door id 4, RndD 16
                                                   -> card id 8, RndC 16, card cryptogram 8
80     82    AUTHENTICATE: door proof       00 00  date 4, time 3 (BCD), door cryptogram 8
                                                   -> permission record 12, MAC 8
=====  ====  =============================  =====  ==========================================

Three passes as ISO/IEC 9798-4 mechanism 4 (three-pass mutual authentication
with a cryptographic check function: the first token covers RndD, RndC and
the verifier's identity, the second RndC, RndD), with DESFire EV2's habits:
challenges from both sides, a session key derived from both, CMACs cut to
8 bytes (the values: ``applets/crypto/access.py``). The door's fresh
challenge RndD and the door it stands for go in; the card answers with its
card id (for the door to derive the card's key), its own fresh challenge
RndC and a cryptogram over both; the door answers with its cryptogram over
both and the date and time it vouches for; only then does the card hand out
its permission record for that door, MACed under the session key. The card
says nothing of its permissions before the door has proved the key: an
unauthenticated reader learns the card id only.

Replay fails both ways: replayed door commands meet a new RndC, so their
cryptogram is wrong; replayed card answers meet a new RndD, so the door
finds the card cryptogram wrong. The session lives in RAM for one command:
anything but the door proof, a reselection or a tear ends it.

A wrong door cryptogram costs one try, committed before the refusal (63Cx,
x tries left); at zero the card answers 6983 and proves itself to no door
until the access issuer re-arms it (STORE DATA DGI 0102). A right one
restores the tries, even when the card then holds no permission for that
door. With 64-bit cryptograms and fresh challenges the counter is defence in
depth, as the purse's MAC tries are: it caps online guessing of a door proof
at a few tries between two genuine doors, and a blocked card stops handing
out cryptograms altogether. Its price is a denial of service: any reader in
range can spend the tries with made-up proofs. We accept that for an access
card, which fails closed (the holder is let in by someone) and is re-armed
over the air; a site that would rather not can personalise 15 tries.

The date and time that the door sends are authenticated by its cryptogram
and written, with the door id, into a cyclic entry log (10 entries) in the
same commit as the grant. The card has no clock: the door, not the card,
decides whether the date falls in the permission's window, so an entry is a
permission shown to a door (one outside its window stays shut). The log is for
the band's holder (:meth:`AccessCard.entry_log`): no command reads it, since a
list of the doors its holder went through is nothing a reader should get.

Status words: 6700 wrong length, 6A86 P1-P2, 6985 not personalised or no
challenge before the proof, 6A80 date or time not BCD, 6983 blocked, 63Cx
wrong door cryptogram, 6A88 no permission for this door (after the proof).

Personalisation (STORE DATA from the associated security domain, or
:meth:`AccessCard.personalise` in the factory):

====  =======================================================  =========
DGI   content                                                  encrypted
====  =======================================================  =========
0101  card id (8 bytes)                                        no
0102  authentication tries (1 byte, 1-15)                      no
0103  permissions: 0-16 records of door id 4, valid from 4,    no
      valid until 4 (BCD YYYYMMDD, inclusive)
8101  card key (AES-128), diversified from the site master     under DEK
====  =======================================================  =========

Once personalised, STORE DATA takes 0102 (new limit, tries re-armed) and
0103 (the permission list replaced whole); card id and key stay fixed.
"""
