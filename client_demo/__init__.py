"""The browser client and demo page, shipped inside the package as
`pgbell.client_demo` and served by `pgbell serve` at / and /static/:
pgbell-client.js and its modules in pgbell-client/ (the same files the npm
package in client/ packs), and the demo page that uses them."""
