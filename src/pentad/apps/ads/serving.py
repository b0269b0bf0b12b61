"""Serving: the decision route `GET /api/ads/decide` the loader calls for each slot, and the viewability
beacon `POST /api/ads/v`.

Decide (public, any origin, no credentials): the zone comes from the in-memory DeliverySnapshot, the
visitor's facts from the core (`context.visitors.facts`, scope = the site's domain, so the daily visitor
id is the one analytics counts), then each campaign placed in the zone is checked — running dates,
targeting, daily caps (impressions, clicks, spend) and the frequency cap per visitor, campaign and UTC day
— with atomic cache counters (`cache.incr`, Redis when configured), given its pacing probability, and
`select_creative` picks one (decision.py). The answer carries the creative, a signed impression token for
the beacon and a signed click URL; with nothing to serve a direct zone answers 204, a GPT zone its GPT
config (ad unit, size, Pentad's key-values) with no direct ad. A page whose Origin is not on the zone's
site gets 403 `origin_not_allowed`; a bot gets 204 and `Pentad-Dropped`.

Beacon: the loader posts the impression token (as text/plain, a simple cross-origin request) once the ad
was viewable; a token that is forged, expired or of the click kind is refused 400 and nothing is
recorded; a repeated token is accepted (204) and ignored.
"""

from __future__ import annotations

import functools
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final
from urllib.parse import parse_qsl, urlsplit
from weakref import WeakKeyDictionary
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from pentad.apps.ads.budgets import add_spend
from pentad.apps.ads.decision import Candidate, Selection, select_creative
from pentad.apps.ads.delivery import CampaignEntry, CreativeEntry, ZoneEntry, delivery_snapshot
from pentad.apps.ads.html5 import entry_url
from pentad.apps.ads.images import picture_sources
from pentad.apps.ads.impressions import IMPRESSIONS_STREAM, ImpressionRow
from pentad.apps.ads.pacing import elapsed_share_of, serve_probability
from pentad.apps.ads.settings import APP_NAME, AdsSettings
from pentad.apps.ads.targeting import UTM_KEYS, Predicate, RequestFacts
from pentad.apps.ads.tokens import TOKEN_BYTES, ExpiredToken, InvalidToken, TokenSigner
from pentad.core.cache import Cache
from pentad.core.context import AppContext
from pentad.core.cors import CorsPolicy
from pentad.core.errors import problem_response
from pentad.core.platform import get_platform
from pentad.core.policy import RateLimitClass, route_policy
from pentad.core.security import client_address

DECIDE_RATE = RateLimitClass("ads_decide", "1200/minute")
"""Per client address (a page with several slots calls decide once per slot)."""
BEACON_RATE = RateLimitClass("ads_beacon", "1200/minute")
NO_STORE: Final = {"Cache-Control": "no-store"}
DECIDE_CORS = CorsPolicy(origins="*", credentials=False, methods=("GET",), expose=("Pentad-Dropped",))
BEACON_CORS = CorsPolicy(origins="*", credentials=False, methods=("POST",))
DROPPED_HEADER: Final = "Pentad-Dropped"
DAY_TTL: Final = 2 * 86_400
REQUESTS_TTL: Final = 3 * 3600
MINUTE_TTL: Final = 180
MAX_KEYS: Final = 20

router = APIRouter(prefix="/api/ads", tags=["ads serving"])
_rng = random.Random()


# ------------------------------------------------------------------ counters


def _day(at: datetime, zone: ZoneInfo | None = None) -> str:
    return (at.astimezone(zone) if zone is not None else at).strftime("%Y%m%d")


def daily_key(campaign_id: uuid.UUID, day: str, what: str) -> str:
    """The cache counter of a campaign's day (site's timezone): `imp` served, `clk` clicks, `spend` micros."""
    return f"ads:d:{campaign_id}:{day}:{what}"


def frequency_key(campaign_id: uuid.UUID, utc_day: str, visitor_id: int) -> str:
    return f"ads:f:{campaign_id}:{utc_day}:{visitor_id}"


def minute_key(campaign_id: uuid.UUID, minute: int) -> str:
    """The requests of a unix minute an evenly paced campaign was eligible for (`_EligibleThisMinute`)."""
    return f"ads:m:{campaign_id}:{minute}"


def zone_requests_key(zone_id: uuid.UUID, hour: int) -> str:
    """Decision requests of a zone in a unix hour (folded into ads_zone_traffic by ads.pacing_snapshot)."""
    return f"ads:zr:{zone_id}:{hour}"


def unit_per_impression(campaign: CampaignEntry) -> float:
    """What serving one impression delivers in the unit of the campaign's daily budget (for pacing)."""
    if campaign.daily_budget_micros is not None:
        return campaign.rate_micros / 1000 if campaign.pricing == "cpm" else 0.0
    if campaign.daily_impressions is not None:
        return 1.0
    return 0.0


def pacing_budget(
    campaign: CampaignEntry, served: int, clicks: int, spend: int
) -> tuple[float | None, float]:
    """(daily budget, delivered so far) in the unit pacing runs on: spend, else impressions, else clicks."""
    if campaign.daily_budget_micros is not None:
        return float(campaign.daily_budget_micros), float(spend)
    if campaign.daily_impressions is not None:
        return float(campaign.daily_impressions), float(served)
    if campaign.daily_clicks is not None:
        return float(campaign.daily_clicks), float(clicks)
    return None, 0.0


def capped(campaign: CampaignEntry, served: int, clicks: int, spend: int, seen: int) -> bool:
    return (
        (campaign.daily_impressions is not None and served >= campaign.daily_impressions)
        or (campaign.daily_clicks is not None and clicks >= campaign.daily_clicks)
        or (campaign.daily_budget_micros is not None and spend >= campaign.daily_budget_micros)
        or (campaign.frequency_cap is not None and seen >= campaign.frequency_cap)
    )


class _EligibleThisMinute:
    """This process's count of the requests each evenly paced campaign (`paced_per_minute`) was eligible
    for in the current unix minute. Added up in memory and written to the campaign's minute counter
    (`minute_key`, which pacing reads back as last minute's) by the first decision of a later minute: one
    counter write per campaign and minute instead of one per campaign and request. With several workers,
    last minute's figure is complete once each has answered a request in the new minute."""

    __slots__ = ("counts", "minute")

    def __init__(self, minute: int) -> None:
        self.minute = minute
        self.counts: dict[str, int] = {}
        """minute_prefix → eligible requests of `minute`."""


_eligible: WeakKeyDictionary[Cache, _EligibleThisMinute] = WeakKeyDictionary()
"""Per cache (each app has its own), so apps in one process do not mix their counts."""


async def _eligible_counts(cache: Cache, minute: int) -> dict[str, int]:
    """The counts to add this request's eligible campaigns to, after writing out an ended minute's."""
    state = _eligible.get(cache)
    if state is None:
        state = _eligible[cache] = _EligibleThisMinute(minute)
    if minute > state.minute:
        ended, done = state.minute, state.counts
        state.minute, state.counts = minute, {}
        for prefix, eligible in done.items():
            await cache.incr(f"{prefix}{ended}", eligible, MINUTE_TTL)
    return state.counts


@dataclass(frozen=True)
class Decision:
    selection: Selection | None
    creative: CreativeEntry | None
    campaign: CampaignEntry | None


async def decide(
    context: AppContext, zone: ZoneEntry, facts: RequestFacts, visitor_id: int, *, count: bool
) -> Decision:
    """Pick the creative for one request (module docstring); `count` records it against the caps.

    Only the counters a live campaign's settings use are read (its daily limits, frequency cap, total
    budget, and last minute's eligible requests for even pacing on spend or impressions), in one
    `get_many`; only such an evenly paced campaign counts this request as eligible for the minute, in
    memory (`_EligibleThisMinute`)."""
    at = facts.at
    local = at.astimezone(zone.tzinfo)
    day, utc_day = _day(local), _day(at)
    stamp = int(at.timestamp())
    minute = stamp // 60
    live: list[CampaignEntry] = []
    matched: dict[Predicate, bool] = {}  # campaigns with the same targeting share its predicate
    for campaign in zone.campaigns:
        if not campaign.runs_at(at):
            continue
        if not campaign.targets_all:
            hit = matched.get(campaign.targeting)
            if hit is None:
                hit = matched[campaign.targeting] = campaign.targeting(facts)
            if not hit:
                continue
        live.append(campaign)
    cache = context.cache
    await cache.incr(f"{zone.requests_prefix}{stamp // 3600}", 1, REQUESTS_TTL)
    eligible = await _eligible_counts(cache, minute)
    keys: list[str] = []
    visitor_suffix = f"{utc_day}:{visitor_id}"
    last_minute_suffix = str(minute - 1)
    for campaign in live:
        if not campaign.counted:
            continue
        if campaign.daily_impressions is not None:
            keys.append(f"{campaign.daily_prefix}{day}:imp")
        if campaign.daily_clicks is not None:
            keys.append(f"{campaign.daily_prefix}{day}:clk")
        if campaign.daily_budget_micros is not None:
            keys.append(f"{campaign.daily_prefix}{day}:spend")
        if campaign.frequency_cap is not None:
            keys.append(campaign.frequency_prefix + visitor_suffix)
        if campaign.paced_per_minute:
            keys.append(campaign.minute_prefix + last_minute_suffix)
        if campaign.budget_micros is not None:
            keys.append(campaign.total_key)
    values = iter([int(value or 0) for value in await cache.get_many(keys)] if keys else ())
    candidates: list[Candidate] = []
    elapsed: float | None = None  # the share of the day's traffic gone by, once for every even campaign
    for campaign in live:
        if not campaign.counted:
            candidates.append(campaign.candidate)
            continue
        served = next(values) if campaign.daily_impressions is not None else 0
        clicks = next(values) if campaign.daily_clicks is not None else 0
        spend = next(values) if campaign.daily_budget_micros is not None else 0
        seen = next(values) if campaign.frequency_cap is not None else 0
        last_minute = next(values) if campaign.paced_per_minute else 0
        total = next(values) if campaign.budget_micros is not None else 0
        probability = 0.0
        spent = campaign.budget_micros is not None and total >= campaign.budget_micros
        if not spent and not capped(campaign, served, clicks, spend, seen):
            budget, delivered = pacing_budget(campaign, served, clicks, spend)
            if budget is None:
                probability = 1.0
            else:
                if elapsed is None and campaign.pacing != "asap":
                    elapsed = elapsed_share_of(zone.shares, zone.hour_starts, local)
                probability = serve_probability(
                    "asap" if campaign.pacing == "asap" else "even",
                    daily_budget=budget,
                    delivered=delivered,
                    profile=zone.profile,
                    local_now=local,
                    expected_next_minute=last_minute * unit_per_impression(campaign),
                    elapsed=elapsed,
                )
            if campaign.paced_per_minute:
                prefix = campaign.minute_prefix
                eligible[prefix] = eligible.get(prefix, 0) + 1
        if probability >= 1:
            candidates.append(campaign.candidate)
        else:
            candidate = campaign.candidate
            candidates.append(
                Candidate(candidate.creative_id, campaign.id, campaign.priority, campaign.weight, probability)
            )
    house = zone.house
    selection = select_creative(candidates, facts, _rng, house.id if house is not None else None)
    if selection is None:
        return Decision(None, None, None)
    if selection.house:
        return Decision(selection, house, None)
    campaign = next(entry for entry in live if entry.id == selection.campaign_id)
    creative = campaign.creatives[0] if len(campaign.creatives) == 1 else _rng.choice(campaign.creatives)
    if count:
        await cache.incr(f"{campaign.daily_prefix}{day}:imp", 1, DAY_TTL)
        if campaign.frequency_cap is not None:
            await cache.incr(campaign.frequency_prefix + visitor_suffix, 1, DAY_TTL)
    return Decision(Selection(creative.id, campaign.id, house=False), creative, campaign)


# ------------------------------------------------------------------ request helpers


def _problem(request: Request, status: int, code: str, detail: str) -> Response:
    return problem_response(
        status, code, detail, request_id=getattr(request.state, "request_id", None), headers=NO_STORE
    )


def _origin_allowed(request: Request, zone: ZoneEntry) -> bool:
    """A browser's Origin (or, without one, Referer) must be the site's domain or a subdomain."""
    for header in ("origin", "referer"):
        value = request.headers.get(header)
        if value and value != "null":
            try:
                host = urlsplit(value).hostname or ""
            except ValueError:
                return False
            return zone.allows_host(host)
    return True


@functools.lru_cache(maxsize=4)
def _signer(signing_secret: bytes) -> TokenSigner:
    """The platform's signer, its keys derived once (not on every decision and beacon)."""
    return TokenSigner(signing_secret)


def _keys(values: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for value in values[:MAX_KEYS]:
        key, _, item = value.partition(":")
        if key and item and len(key) <= 40 and len(item) <= 100:
            found[key] = item
    return found


async def _creative_json(
    context: AppContext, creative: CreativeEntry, click_url: str, settings: AdsSettings
) -> dict[str, Any]:
    image = None
    if creative.storage_key is not None and creative.kind == "image":
        image = await context.storage.signed_url(creative.storage_key, settings.impression_token_ttl)
    return {
        "sources": picture_sources(context.base_url.rstrip("/"), creative.id, creative.variants)
        if creative.kind == "image"
        else [],
        "id": str(creative.id),
        "kind": creative.kind,
        "image": image,
        "width": creative.width,
        "height": creative.height,
        "alt": creative.alt_text,
        "headline": creative.headline,
        "body": creative.body,
        "html": entry_url(context.base_url.rstrip("/"), creative.id) if creative.kind == "html5" else None,
        "click": click_url,
    }


def gpt_targeting(facts: RequestFacts, keys: dict[str, str]) -> dict[str, str]:
    """Pentad's key-values for a GPT slot: pt_country, pt_device, pt_source, pt_path, utm_*, custom keys."""
    found = {
        "pt_country": facts.country or "",
        "pt_device": facts.device or "",
        "pt_source": facts.source or "",
        "pt_path": facts.path[:100],
    }
    found.update({f"utm_{key}": value for key, value in facts.utm.items()})
    found.update(keys)
    return {key: value for key, value in found.items() if value}


# ------------------------------------------------------------------ routes


@router.get(
    "/decide",
    summary="Choose the ad for one slot (the loader's endpoint)",
    responses={
        200: {"description": "The ad (and, for a GPT zone, the GPT slot config)."},
        204: {"description": "Nothing to serve here (or a bot: see Pentad-Dropped)."},
        403: {"description": "The page is not on the zone's site."},
        404: {"description": "No such zone."},
    },
)
@route_policy(
    public="the loader on any visitor's page asks anonymously for an ad",
    rate_limit=DECIDE_RATE,
    cors=DECIDE_CORS,
)
async def decide_route(
    request: Request,
    z: Annotated[uuid.UUID, Query(description="Zone id.")],
    p: Annotated[str, Query(max_length=2000, description="The page's path and query.")] = "/",
    r: Annotated[str | None, Query(max_length=2000, description="document.referrer.")] = None,
    kv: Annotated[list[str], Query(description="Custom key-values, `key:value`, repeatable.")] = [],  # noqa: B006
) -> Response:
    platform = get_platform(request)
    settings = platform.app_settings(AdsSettings)
    zone = await delivery_snapshot(platform).zone(z)
    if zone is None:
        return _problem(request, 404, "unknown_zone", "No zone has this id.")
    if not _origin_allowed(request, zone):
        return _problem(request, 403, "origin_not_allowed", "The page is not on the zone's site.")
    if not p.startswith("/"):
        return _problem(request, 422, "invalid_path", "`p` must be the page's path, starting with /.")
    parts = urlsplit(p)
    path = parts.path or "/"
    if not zone.shows_on(path):
        return Response(status_code=204, headers=NO_STORE)
    visitor = await platform.visitors.facts(
        client_address(request),
        request.headers.get("user-agent", ""),
        r,
        f"https://{zone.domain}{p}",
        zone.domain,
    )
    if visitor.bot_reason is not None:
        return Response(status_code=204, headers={**NO_STORE, DROPPED_HEADER: visitor.bot_reason})
    utm = {key: value for key, value in parse_qsl(parts.query) if key.startswith("utm_")}
    facts = RequestFacts(
        at=datetime.now(UTC),
        path=path,
        country=visitor.country,
        device=visitor.device,
        browser=visitor.browser,
        source=visitor.source,
        utm={
            key: value
            for key in UTM_KEYS
            if (value := getattr(visitor, f"utm_{key}") or utm.get(f"utm_{key}") or "")
        },
        keys=_keys(kv),
    )
    gpt = zone.mode == "gpt" and zone.gpt_ad_unit is not None
    decision = await decide(platform, zone, facts, visitor.visitor_id, count=not gpt)
    body: dict[str, Any] = {
        "zone": str(zone.id),
        "width": zone.width,
        "height": zone.height,
        "ad": None,
        "impression": None,
        "viewable": {"ratio": settings.viewable_ratio, "seconds": settings.viewable_seconds},
    }
    if gpt:
        body["gpt"] = {
            "ad_unit": zone.gpt_ad_unit,
            "sizes": [[zone.width, zone.height]],
            "targeting": gpt_targeting(facts, _keys(kv)),
        }
    if decision.creative is None:
        if not gpt:
            return Response(status_code=204, headers=NO_STORE)
        return JSONResponse(body, headers=NO_STORE)
    impression_id = uuid.uuid4()
    signer = _signer(platform.signing_secret)
    creative_id = decision.creative.id
    click = signer.sign(
        "click",
        impression_id=impression_id,
        creative_id=creative_id,
        zone_id=zone.id,
        ttl=settings.click_token_ttl,
    )
    body["impression"] = signer.sign(
        "impression",
        impression_id=impression_id,
        creative_id=creative_id,
        zone_id=zone.id,
        ttl=settings.impression_token_ttl,
    )
    body["house"] = decision.campaign is None
    body["ad"] = await _creative_json(
        platform, decision.creative, f"{platform.base_url.rstrip('/')}/ads/c/{click}", settings
    )
    if not gpt:
        platform.ingest.append_nowait(
            IMPRESSIONS_STREAM,
            ImpressionRow(
                id=impression_id,
                kind="served",
                ts=int(facts.at.timestamp() * 1000),
                zone_id=zone.id,
                creative_id=decision.creative.id,
                campaign_id=decision.campaign.id if decision.campaign is not None else None,
                site_id=zone.site_id,
                visitor_id=visitor.visitor_id,
                path=path[:500],
                source=visitor.source,
                country=visitor.country,
                device=visitor.device,
            ),
        )
        platform.metrics.for_app(APP_NAME).counter("served", "Ads served by the decision route.").inc()
    return JSONResponse(body, headers=NO_STORE)


BEACON_BODY_LIMIT = 1024
"""Bytes a viewability beacon may carry (an impression token is far smaller)."""


@router.post(
    "/v",
    status_code=204,
    summary="Report a viewable impression (the loader's beacon)",
    response_class=Response,
    responses={
        204: {"description": "Recorded (a repeated token is accepted and ignored)."},
        400: {"description": "Not an impression token of ours, or expired."},
        403: {"description": "The page is not on the zone's site."},
        413: {"description": f"Larger than {BEACON_BODY_LIMIT} bytes."},
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}}
    },
)
@route_policy(
    public="the loader posts the signed impression token it was given",
    rate_limit=BEACON_RATE,
    body_limit=BEACON_BODY_LIMIT,
    cors=BEACON_CORS,
)
async def viewable_beacon(request: Request) -> Response:
    platform = get_platform(request)
    settings = platform.app_settings(AdsSettings)
    raw = (await request.body())[: 2 * TOKEN_BYTES + 1]
    try:
        token = _signer(platform.signing_secret).verify("impression", raw.decode("ascii").strip())
    except (InvalidToken, ExpiredToken) as exc:
        return _problem(request, 400, exc.code, exc.message)
    except UnicodeDecodeError:
        return _problem(request, 400, "invalid_ad_token", "The ad link is not valid.")
    zone = await delivery_snapshot(platform).zone(token.zone_id)
    if zone is not None and not _origin_allowed(request, zone):
        return _problem(request, 403, "origin_not_allowed", "The page is not on the zone's site.")
    first = await platform.cache.incr(f"ads:v:{token.impression_id}", 1, settings.impression_token_ttl + 60)
    if first != 1 or zone is None:
        return Response(status_code=204, headers=NO_STORE)
    campaign = zone.campaign_of.get(token.creative_id)
    if zone.house is not None and zone.house.id == token.creative_id:
        campaign = None
    now = time.time()
    platform.ingest.append_nowait(
        IMPRESSIONS_STREAM,
        ImpressionRow(
            id=token.impression_id,
            kind="viewable",
            ts=int(now * 1000),
            zone_id=zone.id,
            creative_id=token.creative_id,
            campaign_id=campaign.id if campaign is not None else None,
            site_id=zone.site_id,
        ),
    )
    if campaign is not None and campaign.pricing == "cpm":
        day = _day(datetime.fromtimestamp(now, UTC), ZoneInfo(zone.timezone))
        await platform.cache.incr(daily_key(campaign.id, day, "spend"), campaign.rate_micros // 1000, DAY_TTL)
        if campaign.budget_micros is not None:
            await add_spend(platform, campaign.id, campaign.rate_micros // 1000)
    platform.metrics.for_app(APP_NAME).counter("viewable", "Viewable impressions reported.").inc()
    return Response(status_code=204, headers=NO_STORE)
