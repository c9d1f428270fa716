"""The demo domain: deals and payments (`pgbell migrate --demo`), whose
triggers notify through pgbell.notify() exactly as an application's would.
"""
