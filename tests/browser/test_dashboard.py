"""The static dashboard in headless Chromium, checked against the warehouse it was rendered from."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from browser.chrome import Page, open_page, wait_ready
from helpers import query

pytestmark = pytest.mark.emulators

TOP_SONGS, TOP_GENRES, MAX_CHART_ROWS = 15, 50, 500
COUNTS_JS = """
const n = (sel) => document.querySelectorAll(sel).length;
return {
  popularity: n('#chart-popularity circle.mark'),
  top: n('#chart-top-songs rect.mark'),
  clusters: n('#chart-clusters circle.mark'),
  centroids: n('#chart-clusters path.centroid'),
  markets: n('#chart-markets rect.mark'),
  genres: n('#table-genres tbody tr:not(.empty)'),
  chart: n('#table-chart tbody tr:not(.empty)'),
  new: n('#table-new tbody tr:not(.empty)'),
  up: n('#table-climbers tbody tr:not(.empty)'),
  dropped: n('#table-dropped tbody tr:not(.empty)'),
};
"""
NEIGHBOURS_JS = """
return [...document.querySelectorAll('#explorer-neighbours tbody tr:not(.empty)')].map(tr => [
  tr.dataset.trackId, Number(tr.dataset.rank), tr.cells[4].textContent, tr.cells[5].textContent,
  tr.querySelector('a').href, tr.cells[3].textContent]);
"""


def one(stack: Any, sql: str, **params: Any) -> Any:
    return next(iter(query(stack, sql, **params)[0].values()))


def expected_counts(stack: Any, day: date, market: str | None, dataset: str = "spotify_charts") -> dict[str, int]:
    """What each chart and table must show, from the warehouse's views."""
    v = f"`local-project.{dataset}`"
    m = f"AND market = '{market}'" if market else ""
    scope = market or "ALL"
    clusters = query(stack, f"SELECT cluster, markets FROM {v}.dash_clusters WHERE snapshot_date = @d", d=day)
    moves = query(
        stack,
        f"SELECT movement, COUNT(*) AS n FROM {v}.dash_weekly_movement WHERE snapshot_date = @d {m} GROUP BY 1",
        d=day,
    )
    by_move = {r["movement"]: r["n"] for r in moves}
    summary = query(
        stack,
        "SELECT COUNTIF(avg_danceability IS NOT NULL) + COUNTIF(avg_energy IS NOT NULL) + "
        f"COUNTIF(avg_valence IS NOT NULL) AS n FROM {v}.dash_market_summary "
        "WHERE snapshot_date = @d AND market != 'ALL'",
        d=day,
    )
    return {
        "popularity": one(
            stack,
            f"SELECT COUNT(*) AS n FROM {v}.dash_popularity_danceability WHERE snapshot_date = @d {m} "
            "AND popularity IS NOT NULL AND danceability IS NOT NULL",
            d=day,
        ),
        "top": one(
            stack,
            f"SELECT COUNT(*) AS n FROM {v}.dash_top_songs WHERE snapshot_date = @d AND market = '{scope}' "
            f"AND popularity_rank <= {TOP_SONGS} AND popularity IS NOT NULL",
            d=day,
        ),
        "clusters": sum(1 for r in clusters if market is None or market in r["markets"].split(", ")),
        "centroids": len({r["cluster"] for r in clusters}),
        "markets": summary[0]["n"],
        "genres": one(
            stack,
            f"SELECT COUNT(*) AS n FROM {v}.dash_genres WHERE snapshot_date = @d AND market = '{scope}' "
            f"AND genre_rank <= {TOP_GENRES}",
            d=day,
        ),
        "chart": min(MAX_CHART_ROWS, sum(n for k, n in by_move.items() if k != "dropped")),
        "new": by_move.get("new", 0),
        "up": by_move.get("up", 0),
        "dropped": by_move.get("dropped", 0),
    }


def choose(driver: Any, select_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, select_id)).select_by_value(value)
    wait_ready(driver)


def pick_song(driver: Any, text: str, track_id: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "explorer-search")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.CSS_SELECTOR, f'#explorer-results button[data-track-id="{track_id}"]').click()


def test_page_loads_offline_without_console_errors(browser: Any, demo_page: Page, artifacts: Any) -> None:
    logs = open_page(browser, demo_page.path)
    assert [e for e in logs if e["level"] == "SEVERE"] == []
    # No request leaves the machine: every resource the page touched is the file itself or inline.
    urls = browser.execute_script(
        "return [location.href, ...performance.getEntries().map(e => e.name).filter(n => n.includes(':'))]"
    )
    assert all(u.startswith(("file:", "data:", "about:")) for u in urls), urls
    html = demo_page.path.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*[\"']?(https?:)?//", html, re.I)
    assert "Content-Security-Policy" in html and "connect-src 'none'" in html
    browser.set_window_size(1400, 2800)
    try:
        assert browser.save_screenshot(str(artifacts / "dashboard.png"))
    finally:
        browser.set_window_size(1400, 1000)


def test_charts_and_tables_show_the_warehouse_rows(stack: Any, browser: Any, demo_page: Page) -> None:
    open_page(browser, demo_page.path)
    assert browser.execute_script(COUNTS_JS) == expected_counts(stack, demo_page.week, None)
    choose(browser, "market-filter", "BR")
    assert browser.execute_script(COUNTS_JS) == expected_counts(stack, demo_page.week, "BR")
    cards = browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#scorecards .card')]"
        ".map(c => [c.dataset.card, c.querySelector('.value').textContent]))"
    )
    summary = query(
        stack, "SELECT * FROM dash_market_summary WHERE snapshot_date = @d AND market = 'BR'", d=demo_page.week
    )[0]
    assert (cards["Tracks"], cards["Artists"], cards["Genres"]) == tuple(
        str(summary[k]) for k in ("tracks", "artists", "genres")
    )
    assert cards["Avg danceability"] == f"{summary['avg_danceability']:.3f}"


def test_snapshot_selector_lists_the_stored_weeks(stack: Any, browser: Any, demo_page: Page) -> None:
    open_page(browser, demo_page.path)
    options = browser.execute_script(
        "return [...document.querySelectorAll('#snapshot-select option')].map(o => o.value)"
    )
    stored = query(
        stack,
        "SELECT DISTINCT snapshot_date FROM dash_snapshots WHERE snapshot_date <= @d "
        "ORDER BY snapshot_date DESC LIMIT 12",
        d=demo_page.week,
    )
    assert options == [r["snapshot_date"].isoformat() for r in stored]
    assert options[0] == demo_page.week.isoformat()
    older = demo_page.weeks[0]
    choose(browser, "snapshot-select", older.isoformat())
    assert older.isoformat() in browser.find_element("id", "subtitle").text
    assert browser.execute_script(COUNTS_JS) == expected_counts(stack, older, None)


def test_explorer_lists_neighbours_in_the_warehouse_order(stack: Any, browser: Any, demo_page: Page) -> None:
    day = demo_page.week
    song = query(
        stack,
        "SELECT track_id, track_name FROM dash_recommendations WHERE snapshot_date = @d AND track_markets LIKE '%,%' "
        "ORDER BY track_id LIMIT 1",
        d=day,
    )[0]
    warehouse = query(
        stack,
        "SELECT neighbor_track_id, `rank`, distance, cross_market, neighbor_markets FROM recommendations "
        "WHERE snapshot_date = @d AND track_id = @t ORDER BY `rank`",
        d=day,
        t=song["track_id"],
    )
    open_page(browser, demo_page.path)
    shown = browser.execute_script(
        "return JSON.parse(document.getElementById('dashboard-data').textContent).meta.neighbours"
    )
    pick_song(browser, song["track_name"], song["track_id"])
    assert browser.find_element("id", "explorer-selected").get_attribute("data-track-id") == song["track_id"]

    def rows(wanted: list[dict[str, Any]]) -> list[list[Any]]:
        return [
            [
                r["neighbor_track_id"],
                r["rank"],
                f"{round(r['distance'], 3):.3f}",
                "\u2713 cross-market" if r["cross_market"] else "",
                f"https://open.spotify.com/track/{r['neighbor_track_id']}",
                ", ".join(r["neighbor_markets"]),
            ]
            for r in wanted
        ]

    listed = browser.execute_script(NEIGHBOURS_JS)
    assert len(listed) == min(shown, len(warehouse)) > 0
    assert listed == rows(warehouse[:shown])
    assert any(r["cross_market"] for r in warehouse[:shown])

    choose(browser, "market-filter", "BR")  # the songs most like it that chart in Brazil, same order
    in_br = [r for r in warehouse[:shown] if "BR" in r["neighbor_markets"]]
    assert browser.execute_script(NEIGHBOURS_JS) == rows(in_br)
    nearest = browser.find_element("css selector", '#explorer-by-market li[data-market="BR"]').text
    assert nearest.startswith(f"Nearest in BR: #{in_br[0]['rank']} ")


def test_explorer_finds_the_songs_of_an_artist(stack: Any, browser: Any, demo_page: Page) -> None:
    day = demo_page.week
    artist = query(
        stack,
        "SELECT a AS artist, COUNT(*) AS n FROM tracks, UNNEST(artist_names) AS a WHERE snapshot_date = @d "
        "GROUP BY a ORDER BY n DESC, a LIMIT 1",
        d=day,
    )[0]["artist"]
    songs = query(
        stack, "SELECT track_id FROM tracks WHERE snapshot_date = @d AND @a IN UNNEST(artist_names)", d=day, a=artist
    )
    open_page(browser, demo_page.path)
    box = browser.find_element("id", "explorer-search")
    box.send_keys(artist)
    found = browser.execute_script(
        "return [...document.querySelectorAll('#explorer-results button')].map(b => b.dataset.trackId)"
    )
    assert sorted(found) == sorted(r["track_id"] for r in songs)
    pick_song(browser, artist, found[-1])
    assert browser.find_element("id", "explorer-selected").get_attribute("data-track-id") == found[-1]


def test_provenance_note_and_synthetic_banner(stack: Any, browser: Any, demo_page: Page) -> None:
    open_page(browser, demo_page.path)
    assert browser.find_element("id", "synthetic-banner").is_displayed()
    footer = browser.find_element("id", "provenance").text
    sources = query(
        stack, "SELECT chart_source, feature_source FROM dash_snapshots WHERE snapshot_date = @d", d=demo_page.week
    )
    for r in sources:
        assert f"chart source {r['chart_source']}" in footer
        assert f"features {r['feature_source']}" in footer
    assert "local-project.spotify_charts" in footer


def test_week_over_week_tables_on_known_movement(stack: Any, browser: Any, crafted_page: Page) -> None:
    from browser.crafted import W2, W3, name, track_id

    logs = open_page(browser, crafted_page.path)
    assert [e for e in logs if e["level"] == "SEVERE"] == []
    assert browser.find_element("id", "synthetic-banner").is_displayed()  # song e is "(synthetic)"

    def table(table_id: str) -> list[str | None]:
        return browser.execute_script(
            f"return [...document.querySelectorAll('#{table_id} tbody tr:not(.empty)')].map(tr => tr.dataset.trackId)"
        )

    assert browser.execute_script(COUNTS_JS) == expected_counts(stack, W3, None, crafted_page.dataset)
    assert table("table-new") == [track_id("e")]
    assert table("table-climbers") == [track_id("e"), track_id("d")]  # both up 1: BR #1 before GLOBAL #2
    assert table("table-dropped") == [track_id("a")]
    assert name("a", W2) in browser.find_element("id", "table-dropped").text  # named from the week it charted

    choose(browser, "snapshot-select", W2.isoformat())
    assert browser.execute_script(COUNTS_JS) == expected_counts(stack, W2, None, crafted_page.dataset)
    assert (table("table-new"), table("table-climbers"), table("table-dropped")) == (
        [track_id("d")],
        [track_id("b")],
        [track_id("c")],
    )
    choose(browser, "market-filter", "BR")  # BR's first stored week: nothing to compare with
    assert "first stored week of BR" in browser.find_element("id", "movement-summary").text
    assert browser.execute_script(COUNTS_JS) == expected_counts(stack, W2, "BR", crafted_page.dataset)


def test_a_week_whose_model_was_skipped_says_why(browser: Any, crafted_page: Page, artifacts: Any) -> None:
    from browser.crafted import MODEL_SKIPPED, W1, W2, W3
    from selenium.webdriver.common.by import By

    def shown(element_id: str) -> bool:
        return bool(browser.find_element(By.ID, element_id).is_displayed())

    logs = open_page(browser, crafted_page.path)
    assert [e for e in logs if e["level"] == "SEVERE"] == []
    for week in (W3, W2):  # modelled (W2 after a first load that skipped the model)
        choose(browser, "snapshot-select", week.isoformat())
        assert (shown("clusters-skipped"), shown("explorer-skipped"), shown("chart-clusters")) == (False, False, True)
        footer = browser.find_element(By.ID, "provenance").text
        assert "skipped" not in footer and f"Model {week.isoformat()}: 3 tracks in 2 clusters" in footer

    choose(browser, "snapshot-select", W1.isoformat())
    assert (shown("clusters-skipped"), shown("explorer-skipped"), shown("chart-clusters")) == (True, True, False)
    for notice in ("clusters-skipped", "explorer-skipped"):
        # the reason as the load recorded it, its markup characters shown as text
        assert browser.find_element(By.CSS_SELECTOR, f"#{notice} .reason").text == MODEL_SKIPPED
        assert browser.find_elements(By.CSS_SELECTOR, f"#{notice} b") == []
        assert f"No model for the week of {W1.isoformat()}." in browser.find_element(By.ID, notice).text
    assert f"Model {W1.isoformat()}: none, {MODEL_SKIPPED}" in browser.find_element(By.ID, "provenance").text
    empty = browser.find_element(By.CSS_SELECTOR, "#explorer-neighbours tbody tr.empty").text
    assert empty == "No neighbours: the model was skipped this week."
    browser.set_window_size(1400, 2400)
    try:
        assert browser.save_screenshot(str(artifacts / "dashboard-model-skipped.png"))
    finally:
        browser.set_window_size(1400, 1000)


def test_an_artist_known_only_by_name_shows_by_name_without_an_artist_link(browser: Any, crafted_page: Page) -> None:
    from browser.crafted import NAME_ONLY_ARTIST, W3, track_id

    open_page(browser, crafted_page.path)
    assert browser.find_element("id", "snapshot-select").get_attribute("value") == W3.isoformat()
    pick_song(browser, "Artist x4", track_id("e"))  # found by the artist's name
    selected = browser.find_element("id", "explorer-selected").text
    assert " \u2014 Artist x4 \u00b7 " in selected and "name:" not in selected
    hrefs = browser.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.href)")
    assert hrefs and all(h.startswith("https://open.spotify.com/track/") for h in hrefs), hrefs
    assert NAME_ONLY_ARTIST not in crafted_page.path.read_text(encoding="utf-8")  # artist ids never reach the page


def week_options(driver: Any) -> list[str]:
    return list(
        driver.execute_script("return [...document.querySelectorAll('#snapshot-select option')].map(o => o.text)")
    )


def test_only_the_newest_stored_week_is_called_latest(
    browser: Any, crafted_page: Page, crafted_earlier_page: Page
) -> None:
    from browser.crafted import DE_WEEK, W1, W2, W3

    open_page(browser, crafted_earlier_page.path)  # --snapshot-date W2; DE_WEEK and W3 are stored after it
    assert browser.find_element("id", "snapshot-select").get_attribute("value") == W2.isoformat()
    assert week_options(browser) == [W2.isoformat(), W1.isoformat()]  # no "(latest)": W3 is not on the page
    subtitle = browser.find_element("id", "subtitle").text
    assert subtitle.startswith(f"Week of {W2.isoformat()} (latest stored week: {W3.isoformat()}) \u00b7 ")

    open_page(browser, crafted_page.path)
    assert week_options(browser) == [f"{W3.isoformat()} (latest)", DE_WEEK.isoformat(), W2.isoformat(), W1.isoformat()]
    assert browser.find_element("id", "subtitle").text.startswith(f"Week of {W3.isoformat()} (latest stored) \u00b7 ")


def test_week_over_week_says_which_market_has_no_earlier_week(stack: Any, browser: Any, crafted_page: Page) -> None:
    from browser.crafted import DE_WEEK, W1, W2

    def summary() -> str:
        return str(browser.find_element("id", "movement-summary").text)

    open_page(browser, crafted_page.path)
    choose(browser, "snapshot-select", DE_WEEK.isoformat())  # DE's first week; GLOBAL and BR have earlier ones
    assert summary() == (
        f"No earlier stored week of DE to compare with ({DE_WEEK.isoformat()} is the first stored week of DE; "
        "earlier weeks are stored for other markets)."
    )
    assert browser.execute_script(COUNTS_JS) == expected_counts(stack, DE_WEEK, None, crafted_page.dataset)
    assert f"DE {DE_WEEK.isoformat()}: 2 chart entries" in browser.find_element("id", "provenance").text
    assert "first stored week of DE." in browser.find_element("id", "provenance").text

    choose(browser, "snapshot-select", W1.isoformat())  # the first stored week of all
    assert summary() == f"No earlier stored week to compare with ({W1.isoformat()} is the first stored week)."

    choose(browser, "snapshot-select", W2.isoformat())  # GLOBAL compared with W1; BR's first week
    assert summary().startswith(
        f"Against each market's previous stored week (GLOBAL: {W1.isoformat()}, BR: none, its first stored week): "
        "1 new, 1 up, 1 down, 0 unchanged, 1 dropped out; 2 entries of BR not compared"
    )
    choose(browser, "market-filter", "DE")  # DE has no chart that week
    assert summary() == f"No chart of DE is stored for the week of {W2.isoformat()}."
