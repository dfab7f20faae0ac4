"""An independent relying-party check (Debian's python3-fido2): verifies a WebAuthn registration
response that Chromium made against Gatehouse's challenge, for the same RP ID and origin.

Reads one JSON object on stdin: {"rp_id", "origin", "challenge" (base64url), "response" (the
RegistrationResponseJSON the browser posted)}. Prints a JSON object: {"ok": true, "credential_id",
"alg", "user_verified", "sign_count"} or {"ok": false, "error"}; exits 0 either way.
"""
import base64
import json
import sys

from fido2.client import ClientData
from fido2.ctap2 import AttestationObject
from fido2.server import Fido2Server
from fido2.utils import websafe_encode
from fido2.webauthn import PublicKeyCredentialRpEntity, UserVerificationRequirement


def b64url_decode(value):
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def main():
    given = json.load(sys.stdin)
    origin = given["origin"]
    server = Fido2Server(PublicKeyCredentialRpEntity(given["rp_id"], "Gatehouse"), verify_origin=lambda o: o == origin)
    state = {"challenge": websafe_encode(b64url_decode(given["challenge"])), "user_verification": UserVerificationRequirement.REQUIRED}
    response = given["response"]["response"]
    try:
        client_data = ClientData(b64url_decode(response["clientDataJSON"]))
        attestation = AttestationObject(b64url_decode(response["attestationObject"]))
        auth_data = server.register_complete(state, client_data, attestation)
    except Exception as error:  # any refusal is the answer, not a crash
        print(json.dumps({"ok": False, "error": str(error)}))
        return
    credential = auth_data.credential_data
    print(json.dumps({
        "ok": True,
        "credential_id": websafe_encode(credential.credential_id),
        "alg": credential.public_key.ALGORITHM,
        "user_verified": auth_data.is_user_verified(),
        "sign_count": auth_data.counter,
    }))


main()
