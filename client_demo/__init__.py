"""The browser client and demo page, shipped inside the package as
`pgbell.client_demo` and served by `pgbell serve` at / and /static/."""
