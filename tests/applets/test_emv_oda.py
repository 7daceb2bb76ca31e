"""EMV offline data authentication: public certificate chains, then round trips and refusals."""

from __future__ import annotations

from datetime import date
from functools import cache

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given
from hypothesis import strategies as st

from applets.emv import oda
from applets.emv.records import issuer_id, pan_for_certificate
from issuer import emv_pki
from issuer.ecash import BIN
from issuer.emv_pki import DemoPki
from reader.emv_ca import CA_KEYS, checksum
from tests import vectors

H = bytes.fromhex
ALL = vectors.load("emv_oda")
BY_NAME = {v["name"]: v for v in ALL}
CA = vectors.load("emv_oda", "ca_key")
ISSUER = vectors.load("emv_oda", "recover_issuer_key")
ICC = vectors.load("emv_oda", "recover_icc_key")
SDAD = vectors.load("emv_oda", "verify_dynamic_data")


def _sha1(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA1())
    digest.update(data)
    return digest.finalize()


def _certificate(v) -> oda.Certificate:
    return oda.Certificate(H(v["certificate"]), H(v["remainder"]), H(v["exponent"]))


def _ca(name: str) -> oda.PublicKey:
    v = BY_NAME[name]
    return oda.PublicKey(H(v["modulus"]), H(v["exponent"]))


def _issuer(name: str) -> oda.PublicKey:
    v = BY_NAME[name]
    return oda.recover_issuer_key(_ca(v["ca"]), _certificate(v), v["pan"], date.fromisoformat(v["today"]))


def _icc(v) -> oda.PublicKey:
    if "icc_modulus" in v:
        return oda.PublicKey(H(v["icc_modulus"]), H(v["icc_exponent"]))
    chain = BY_NAME[v["icc"]]
    return oda.recover_icc_key(_issuer(chain["issuer"]), _certificate(chain), chain["pan"],
                               H(chain["static_data"]), date.fromisoformat(chain["today"]))


def _refused(v, call):
    if v["error"] is None:
        return call()
    with pytest.raises(oda.OdaError, match=None if v["error"] == "any" else v["error"]):
        call()
    return None


# -- public vectors ----------------------------------------------------------------------------


@pytest.mark.parametrize("v", CA, ids=vectors.ids(CA))
def test_test_ca_keys_match_their_published_check_sums(v):
    assert checksum(H(v["rid"]), int(v["index"], 16), _ca(v["name"])) == H(v["checksum"])


@pytest.mark.parametrize("v", ISSUER, ids=vectors.ids(ISSUER))
def test_recover_issuer_key(v):
    key = _refused(v, lambda: oda.recover_issuer_key(_ca(v["ca"]), _certificate(v), v["pan"],
                                                     date.fromisoformat(v["today"])))
    if key is not None and "expected_modulus" in v:
        assert key == oda.PublicKey(H(v["expected_modulus"]), H(v["expected_exponent"]))


@pytest.mark.parametrize("v", ICC, ids=vectors.ids(ICC))
def test_recover_icc_key(v):
    key = _refused(v, lambda: oda.recover_icc_key(_issuer(v["issuer"]), _certificate(v), v["pan"],
                                                  H(v["static_data"]), date.fromisoformat(v["today"])))
    assert key is not None and len(key.modulus) == 112 and key.exponent == b"\x03"


@pytest.mark.parametrize("v", SDAD, ids=vectors.ids(SDAD))
def test_verify_dynamic_data(v):
    data = _refused(v, lambda: oda.verify_dynamic_data(_icc(v), H(v["sdad"]), H(v["terminal_data"])))
    if data is None:
        return
    assert 2 <= data[0] <= 8 and len(data) > data[0]  # a length-prefixed ICC dynamic number first
    if "expected" in v:
        assert data == H(v["expected"])
    if "expected_cid" in v:  # CDA: IDN, CID, AC, then the transaction data hash code
        assert data[9] == int(v["expected_cid"], 16)
        assert data[18:] == _sha1(H(v["cdol1_data"]) + H(v["generate_ac_response"]))


def test_public_chain_refusals_name_their_check():
    chain = BY_NAME["Mastercard 5285881254345653 ICC key"]
    issuer = _issuer(chain["issuer"])
    certificate, static = _certificate(chain), H(chain["static_data"])
    with pytest.raises(oda.OdaError, match="expired"):
        oda.recover_icc_key(issuer, certificate, chain["pan"], static, date(2015, 7, 1))
    with pytest.raises(oda.OdaError, match="PAN"):
        oda.recover_icc_key(issuer, certificate, "5285881254345654", static, date(2014, 9, 25))
    with pytest.raises(oda.OdaError, match="hash"):
        oda.recover_icc_key(issuer, certificate, chain["pan"], static[:-1] + b"\x01",
                            date(2014, 9, 25))
    issuer_vector = BY_NAME[chain["issuer"]]
    with pytest.raises(oda.OdaError, match="issuer identifier"):
        oda.recover_issuer_key(_ca(issuer_vector["ca"]), _certificate(issuer_vector),
                               "5285891254345653", date(2014, 9, 25))
    with pytest.raises(oda.OdaError, match="hash"):  # the remainder is hashed: none, no match
        oda.recover_issuer_key(_ca(issuer_vector["ca"]),
                               oda.Certificate(H(issuer_vector["certificate"]), b"", b"\x03"),
                               issuer_vector["pan"], date(2014, 9, 25))


# -- the raw RSA operations against cryptography's own ----------------------------------------

_SHA256_DIGEST_INFO = H("3031300d060960864801650304020105000420")


@pytest.mark.parametrize("exponent", [3, 65537])
def test_raw_private_operation_is_the_one_inside_pkcs1_signatures(exponent):
    key = rsa.generate_private_key(public_exponent=exponent, key_size=1024)
    message = b"EMV signs with the raw RSA operation"
    digest = hashes.Hash(hashes.SHA256())
    digest.update(message)
    payload = _SHA256_DIGEST_INFO + digest.finalize()
    encoded = b"\x00\x01" + b"\xff" * (128 - 3 - len(payload)) + b"\x00" + payload
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    assert oda._private_raw(key, encoded) == signature
    assert oda._public_raw(oda.PublicKey.of(key), signature) == encoded


# -- round trips through the demo PKI and their refusals --------------------------------------

PAN = "6225880000000016"
TODAY = date(2026, 11, 23)
STATIC = H("5A0862258800000000165F24033112315F25032611235F280201568200") + H("7C00")


@cache
def _card() -> tuple[rsa.RSAPrivateKey, oda.Certificate]:
    return DemoPki.load().icc_key_and_certificate(PAN, H("1231"), STATIC)


def _chain() -> oda.PublicKey:
    pki = DemoPki.load()
    issuer = oda.recover_issuer_key(CA_KEYS[(pki.rid, pki.ca_index)], pki.issuer_certificate, PAN,
                                    TODAY)
    return oda.recover_icc_key(issuer, _card()[1], PAN, STATIC, TODAY)


def _terminal(un: bytes = H("1A2B3C4D"), amount: int = 1250) -> bytes:
    return oda.fdda_terminal_data(un, H(f"{amount:012d}"), H("0156"), H("01CAFE0001") + bytes(2))


def test_terminal_trusts_the_demo_ca_alone():
    pki = DemoPki.load()
    assert len(CA_KEYS) == 1
    assert pki.ca_public == CA_KEYS[(H("A000000333"), 0x80)]
    assert BIN.startswith(emv_pki.ISSUER_ID.hex().upper().rstrip("F"))
    again = oda.issuer_certificate(pki.ca_key, pki.issuer_public, emv_pki.ISSUER_ID,
                                   emv_pki.ISSUER_EXPIRY, emv_pki.ISSUER_SERIAL)
    assert again == pki.issuer_certificate  # raw RSA signing is deterministic


def test_demo_chain_recovers_the_keys_it_certified():
    pki = DemoPki.load()
    issuer = oda.recover_issuer_key(pki.ca_public, pki.issuer_certificate, PAN, TODAY)
    assert issuer == pki.issuer_public
    assert len(pki.issuer_certificate.remainder) == 4  # 144-byte key, 140 bytes of room
    assert _chain() == oda.PublicKey.of(_card()[0])
    assert len(_card()[1].remainder) == 26  # 128-byte key, 102 bytes of room


def test_certificates_fit_exactly_and_pad_short_keys():
    """A key shorter than its certificate's room is padded with BB, a longer one leaves a remainder."""
    ca = rsa.generate_private_key(public_exponent=3, key_size=1408)
    issuer = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    certificate = oda.issuer_certificate(ca, oda.PublicKey.of(issuer), issuer_id(PAN), H("1230"),
                                         H("000002"))
    assert certificate.remainder == b"" and certificate.exponent == H("010001")
    recovered = oda.recover_issuer_key(oda.PublicKey.of(ca), certificate, PAN, TODAY)
    assert recovered == oda.PublicKey.of(issuer)
    icc = rsa.generate_private_key(public_exponent=3, key_size=1024)
    card = oda.icc_certificate(issuer, oda.PublicKey.of(icc), pan_for_certificate(PAN), H("1230"),
                               H("000003"), STATIC)
    assert len(card.remainder) == 42  # a 128-byte key in a 128-byte certificate
    assert oda.recover_icc_key(recovered, card, PAN, STATIC, TODAY) == oda.PublicKey.of(icc)


def test_flipped_certificate_byte_is_refused():
    pki = DemoPki.load()
    for position in (0, 50, len(pki.issuer_certificate.certificate) - 1):
        data = bytearray(pki.issuer_certificate.certificate)
        data[position] ^= 0x01
        forged = oda.Certificate(bytes(data), pki.issuer_certificate.remainder,
                                 pki.issuer_certificate.exponent)
        with pytest.raises(oda.OdaError):
            oda.recover_issuer_key(pki.ca_public, forged, PAN, TODAY)


def test_certificate_refusals_name_their_check():
    pki = DemoPki.load()
    certificate = pki.issuer_certificate
    with pytest.raises(oda.OdaError, match="issuer identifier"):
        oda.recover_issuer_key(pki.ca_public, certificate, "6225890000000016", TODAY)
    with pytest.raises(oda.OdaError, match="expired"):
        oda.recover_issuer_key(pki.ca_public, certificate, PAN, date(2050, 1, 1))
    with pytest.raises(oda.OdaError, match="hash"):
        oda.recover_issuer_key(pki.ca_public, oda.Certificate(
            certificate.certificate, certificate.remainder[:-1] + b"\x00", certificate.exponent),
            PAN, TODAY)
    with pytest.raises(oda.OdaError, match="length"):
        oda.recover_issuer_key(pki.issuer_public, certificate, PAN, TODAY)
    with pytest.raises(oda.OdaError, match="format"):  # an issuer certificate where an ICC's goes
        oda.recover_icc_key(pki.ca_public, certificate, PAN, STATIC, TODAY)
    issuer, card = _chain_issuer(), _card()[1]
    with pytest.raises(oda.OdaError, match="PAN"):
        oda.recover_icc_key(issuer, card, "6225880000000024", STATIC, TODAY)
    with pytest.raises(oda.OdaError, match="expired"):
        oda.recover_icc_key(issuer, card, PAN, STATIC, date(2032, 1, 1))
    with pytest.raises(oda.OdaError, match="hash"):
        oda.recover_icc_key(issuer, card, PAN, STATIC[:-2] + H("7800"), TODAY)


def _chain_issuer() -> oda.PublicKey:
    pki = DemoPki.load()
    return oda.recover_issuer_key(pki.ca_public, pki.issuer_certificate, PAN, TODAY)


def _forge(body: bytes, header: int = oda.HEADER, trailer: int = oda.TRAILER,
           remainder: bytes = b"") -> oda.Certificate:
    """An issuer certificate signed by the demo CA over a chosen body (Book 2 table 13)."""
    ca = DemoPki.load().ca_key
    message = bytes((header,)) + body + _sha1(body + remainder + H("03")) + bytes((trailer,))
    return oda.Certificate(oda._private_raw(ca, message), remainder, H("03"))


def _issuer_body(hash_algorithm: int = 1, key_algorithm: int = 1, expiry: str = "1230",
                 length: int = 100) -> bytes:
    digits = bytes(min(length, 140))
    return (H("02") + issuer_id(PAN) + H(expiry) + H("000009")
            + bytes((hash_algorithm, key_algorithm, length, 1)) + digits + H("BB") * (140 - len(digits)))


@pytest.mark.parametrize(("certificate", "check"), [
    (lambda: _forge(_issuer_body(), header=0x6B), "header"),
    (lambda: _forge(_issuer_body(), trailer=0xBD), "trailer"),
    (lambda: _forge(_issuer_body(hash_algorithm=2)), "hash algorithm"),
    (lambda: _forge(_issuer_body(key_algorithm=2)), "public key algorithm"),
    (lambda: _forge(_issuer_body(expiry="1330")), "expired"),
    (lambda: _forge(_issuer_body(length=150), remainder=bytes(5)), "remainder"),
    (lambda: _forge(_issuer_body(length=177)), "key length"),
])
def test_each_recovery_check_is_named(certificate, check):
    with pytest.raises(oda.OdaError, match=check):
        oda.recover_issuer_key(DemoPki.load().ca_public, certificate(), PAN, TODAY)


def test_forged_body_with_good_fields_is_accepted():
    """The forging helper itself is sound: the same body with good fields passes."""
    key = oda.recover_issuer_key(DemoPki.load().ca_public, _forge(_issuer_body()), PAN, TODAY)
    assert key == oda.PublicKey(bytes(100), H("03"))


# -- signed dynamic data ----------------------------------------------------------------------


def test_sdad_round_trip_and_refusals():
    key, _ = _card()
    icc = _chain()
    dynamic = b"\x02\x00\x2A"  # the ATC as the ICC dynamic number
    sdad = oda.sign_dynamic_data(key, dynamic, _terminal())
    assert len(sdad) == 128
    assert oda.verify_dynamic_data(icc, sdad, _terminal()) == dynamic
    with pytest.raises(oda.OdaError, match="hash"):
        oda.verify_dynamic_data(icc, sdad, _terminal(amount=1251))
    with pytest.raises(oda.OdaError, match="hash"):
        oda.verify_dynamic_data(icc, sdad, _terminal(un=H("1A2B3C4E")))
    with pytest.raises(oda.OdaError, match="length"):
        oda.verify_dynamic_data(icc, sdad[1:], _terminal())
    with pytest.raises(oda.OdaError, match="format"):  # a certificate is no SDAD
        oda.verify_dynamic_data(_chain_issuer(), _card()[1].certificate, b"")
    longest = bytes(128 - 25)
    assert oda.verify_dynamic_data(icc, oda.sign_dynamic_data(key, longest, b""), b"") == longest
    with pytest.raises(ValueError, match="room"):
        oda.sign_dynamic_data(key, longest + b"\x00", b"")


@given(un=st.binary(min_size=4, max_size=4), amount=st.integers(0, 999_999_999_999),
       card_un=st.binary(min_size=4, max_size=4), atc=st.integers(0, 0xFFFF))
def test_fdda_round_trip_for_any_terminal_data(un, amount, card_un, atc):
    terminal = oda.fdda_terminal_data(un, H(f"{amount:012d}"), H("0156"), b"\x01" + card_un + bytes(2))
    dynamic = b"\x02" + atc.to_bytes(2)
    assert oda.verify_dynamic_data(_chain(), oda.sign_dynamic_data(_card()[0], dynamic, terminal),
                                   terminal) == dynamic


@cache
def _fixed_sdad() -> bytes:
    return oda.sign_dynamic_data(_card()[0], b"\x02\x00\x01", _terminal())


@given(position=st.integers(0, 127), flip=st.integers(1, 255))
def test_any_altered_sdad_is_refused(position, flip):
    altered = bytearray(_fixed_sdad())
    altered[position] ^= flip
    with pytest.raises(oda.OdaError):
        oda.verify_dynamic_data(_chain(), bytes(altered), _terminal())


def test_fdda_terminal_data_is_version_01_only():
    assert _terminal() == H("1A2B3C4D" "000000001250" "0156" "01CAFE00010000")
    with pytest.raises(oda.OdaError, match="fDDA version"):
        oda.fdda_terminal_data(H("1A2B3C4D"), bytes(6), H("0156"), H("00CAFE00010000"))
    with pytest.raises(oda.OdaError, match="fDDA version"):
        oda.fdda_terminal_data(H("1A2B3C4D"), bytes(6), H("0156"), H("01CAFE00"))
    with pytest.raises(ValueError, match="9F37"):
        oda.fdda_terminal_data(H("1A2B3C"), bytes(6), H("0156"), H("01CAFE00010000"))


def test_public_key_of_refuses_what_emv_cannot_carry():
    assert oda.PublicKey.of(_card()[0]).exponent == H("03")
    assert oda.PublicKey.of(_card()[0].public_key()) == oda.PublicKey.of(_card()[0])
    modulus = _card()[0].public_key().public_numbers().n
    with pytest.raises(ValueError, match="exponent is 3 or 65537"):
        oda.PublicKey.of(rsa.RSAPublicNumbers(17, modulus).public_key())
    with pytest.raises(ValueError, match="whole number of bytes"):
        oda.PublicKey.of(rsa.generate_private_key(public_exponent=3, key_size=1028))
