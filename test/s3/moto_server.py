"""moto's server with one gap closed. AWS serves STS AssumeRoleWithWebIdentity unsigned (the web
identity token is the credential), but moto 5.2 with IAM checks on requires an Authorization header
on every action and fails with HTTP 500. Everything else is stock moto."""

import sys

from moto.core.authorization import ActionAuthenticatorMixin
from moto.server import main

_checked = ActionAuthenticatorMixin._authenticate_and_authorize_action
_UNSIGNED_ACTIONS = {"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"}


def _authenticate(self, iam_request_cls, resource="*"):
    if "Authorization" not in self.headers and self._get_action() in _UNSIGNED_ACTIONS:
        return None
    return _checked(self, iam_request_cls, resource)


ActionAuthenticatorMixin._authenticate_and_authorize_action = _authenticate

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
