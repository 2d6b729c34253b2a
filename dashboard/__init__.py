"""The read-only web dashboard (DESIGN §17): one page that says whether the network is healthy and
where every claim and every unit of money is.

    model.py      pure view-model: ledger entries replayed through `ledger.state`, oracle status
                  and claim views merged, page data out (no I/O, no clock: time is an argument)
    charts.py     pure: series -> inline SVG geometry (no chart library, nothing fetched)
    collector.py  I/O: follows the ledger's entries (long poll), polls the oracles' public APIs,
                  fetches and verifies receipts, and tells the pages when something changed
    server.py     the aiohttp shell: HTML pages (Jinja2 templates), server-sent events, static files
    cli.py        `faultproof dashboard --ledger URL --oracle URL ...`

The dashboard holds no key and writes nothing anywhere: it reads only the ledger's and the oracles'
public HTTP APIs.
"""
