"""Released migrations and versioned SQL files are frozen: each is pinned by
its checksum, so an edit fails the build instead of silently changing what
new installations get while old ones keep the old SQL.

Changing a released object means a new file (`..._v2.sql`) and a new
migration that installs it. A new, unreleased file is added here with its
checksum (`sha256sum db/<path>`) in the change that introduces it.
"""

from __future__ import annotations

import hashlib

import pytest

from pgbell.ops.migrate import DB_DIR

PINNED = {
    "migrations/versions/0001_initial.py": "9379cb49f0d0bca1460a88639457943e2f93254b08534f484e8e9669650d19f5",
    "migrations/versions/0001_initial.sql": "a53e8fc11b6aa6ccfc0d1bb800411106abd712668fec5994fe74c5aef8c417c4",
    "migrations/versions/0002_lean_notify.py": "7374f91848aca0b177d7d4be5eba9f0aa065f76d12d9b1dd8e923ee77e005a9f",
    "migrations/versions/demo_0001_deals.py": "767f0810e1f8dec00ea744136427c7b21b94a5eca0b898f2bb8cd75f11699133",
    "migrations/versions/demo_0001_deals.sql": "0775590a1d62df4d914c52ccd2a5a4aab7db55e8602121fc0cc3d8371488ca4c",
    "migrations/versions/demo_0002_lean_triggers.py": "99e32d8b4ca96b34de53e548aad508a94b4908aef3b5bfd4b49b18c9f8f7f86a",
    "triggers/010_render_v1.sql": "acdfa22e8238c41d29d49c9494dd5ddafe28072ca627744728686610eea79855",
    "triggers/011_render_v2.sql": "672be4944b960526cf48beac7c4893d6a988e045e1127b4e150b0c192e4d516b",
    "triggers/015_report_problem_v1.sql": "d73dc999dfd8ce2048ff8c2f23a7ffddac31c935ad1f66afe54afe4af3672a26",
    "triggers/016_action_url_ok_v1.sql": "62659b441cddf8ff6ba85dae92c8a1c6b10a6e74b8de6816a2b3fc96b5d83b64",
    "triggers/017_report_problem_v2.sql": "b234496afea00ad887b685a830370fe0f0b5f9b2525c2e5cc5dc8e5dcfb34f71",
    "triggers/018_role_members.sql": "2b60318b226eb93ac9636a37525ea23479f2a684d2a9764b912f848c9d856326",
    "triggers/020_notify_v1.sql": "a3354b0bea2641a3df3b8e5cd72d73b15754977937f6cde4c773259396204d99",
    "triggers/021_notify_v2.sql": "09a9775602c2889060aaa30a59cf0636b42aa2af3f13aabdce93df3f3a5f795f",
    "triggers/900_wake_servers_v1.sql": "d4d7ce19e315a29283daabe0ba72f35a1a48e4b265d47765ac1cf4fcd4ff851f",
    "triggers/910_state_changes_v1.sql": "ea9c7628a1e83d3ea32cf850926853f697a6168659f6fd4f7a8a067affd82355",
    "triggers/920_tokens_revoked_v1.sql": "b71fcde9415ebcbd521a073a062d24e0684d221faa8aa8448edc7960f554c4fa",
    "triggers/980_grant_roles_v1.sql": "012fd6acfd4cfd2c24697ffdcb3305f8cc104c2483e95bcd344caad64e8f3b1f",
    "triggers/981_grant_roles_v2.sql": "d9dc1ad8716841ce87bc9480925bb1127edb264536cc0689d05c5667bbc19b89",
    "triggers/990_rules_view_v1.sql": "faaa89f482eb283bc8a8dcf86088d72537c0d3dd74c829b4ba640705739df854",
    "triggers/demo/100_deal_created_v1.sql": "b12908e467365c9e6c02223aa5b3a14f7007919f4b3445e9cabab4c67b77666a",
    "triggers/demo/101_deal_created_v2.sql": "a8152a31a1b568bc9689ba619d25e5d34fef9f901600d76a1c22112a2c1708b3",
    "triggers/demo/110_payment_received_v1.sql": "57f4c570bf5119171d73a94b2280c4d2a7fc6f1b60c1309366ab8cf31b1de768",
    "triggers/demo/111_payment_received_v2.sql": "03ecbc6c7d9add630a181800e9730987b8bf335ea896dcb1fafae92cb37297e1",
    "triggers/demo/190_demo_grant_roles_v1.sql": "1b3c6bdbe5004f77416e0e71dbb151c4dc99a0af434310bdf4764b79246ff6ad",
    "migrations/versions/0003_adaptive_wakeup.py": "9a7f765c09e0e450cc078c56d47afc8d739878361f7223a58b803450e15fba79",
    "triggers/901_wake_servers_v2.sql": "99d2805ca2498a5eec14a98f57b95d4e102129c323b087f81b8ff33b86558eb9",
    "triggers/911_state_changes_v2.sql": "96f08ef2609d2a2abab45974baa33c38319a5c228e3095d54cdb6dd8faa2eb40",
    "triggers/921_tokens_revoked_v2.sql": "bd3d49b0f2c6359cb60cfc7b768789ad884ec1e060fb483a86ebec0b69b3b938",
    "migrations/versions/0004_lean_writer_path.py": "7577e6df3ca3a7bbbe341e1b8cd425f889f8b44d8bc7a6067e79cddd1c1e8d55",
    "migrations/versions/demo_0003_deal_created_v3.py": "4c7dca7b8235e3c1f633beef02ae6bc12546cc7f6f37c1b9b50d8490a5826876",
    "triggers/012_render_one_v2.sql": "bcb78ae2422da8ca2903e50814c6fac57c3c39812a70a09f68e722cb03dba611",
    "triggers/019_inline_helpers_v1.sql": "98a6f7493f5dcf979924cc4e4177223491312fdd1f64828d6c380ad2f3181a2c",
    "triggers/022_notify_v3.sql": "352ab2666b9b60ddcf0385b955623eacc84c7923bc0e0bbe99b51a83c18779b5",
    "triggers/demo/102_deal_created_v3.sql": "9c76531f97c8d92694e6ab58fbc1224b9ef540d30a724887d074b53c5d87e552",
    "triggers/902_wake_servers_v3.sql": "8adf97bf5a17b0f810d6035a7aeccad894214c1fc704053fe8be589f9f7e5545",
    "migrations/versions/0005_wake_slots.py": "353ffddd544720796e356ab4faf9cbba3f2133cce14e785f6fee93568d397bcf",
    "triggers/903_wake_servers_v4.sql": "80ac137f99df131adea4a7ae5cf4914db5f35f3c91be4a3bf088e1c43bdbb5d2",
}


def _released_files() -> set[str]:
    found = [
        *DB_DIR.glob("migrations/versions/*.py"),
        *DB_DIR.glob("migrations/versions/*.sql"),
        *DB_DIR.glob("triggers/**/*.sql"),
    ]
    return {p.relative_to(DB_DIR).as_posix() for p in found if p.name != "__init__.py"}


def test_every_migration_and_sql_file_is_pinned():
    unpinned = sorted(_released_files() - set(PINNED))
    assert unpinned == [], f"pin these in tests/test_frozen.py once they are final: {unpinned}"
    gone = sorted(set(PINNED) - _released_files())
    assert gone == [], f"released files were removed: {gone}"


@pytest.mark.parametrize("path", sorted(PINNED))
def test_released_file_is_unchanged(path):
    digest = hashlib.sha256((DB_DIR / path).read_bytes()).hexdigest()
    assert digest == PINNED[path], (
        f"db/{path} was released and must not change: put the new SQL in a new _vN file"
        " installed by a new migration"
    )
