"""The market settings refuse what the app could not use, with a message naming the fix; the defaults work
(five hubs, the plan's fee bases), and a contact is what lets ESI be called at all."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from pentad.apps.market.esi.resource import EsiNotConfigured, esi_config
from pentad.apps.market.settings import MarketSettings
from pentad.core.config import Settings


def test_defaults_are_usable() -> None:
    settings = MarketSettings()
    assert [(hub.key, hub.station_id, hub.region_id) for hub in settings.hub_list] == [
        ("jita", 60003760, 10000002),
        ("amarr", 60008494, 10000043),
        ("dodixie", 60011866, 10000032),
        ("rens", 60004588, 10000030),
        ("hek", 60005686, 10000042),
    ]
    assert settings.hub("amarr") is not None
    assert settings.hub("nowhere") is None
    assert settings.downtime_window == (time(10, 58), time(11, 20))
    assert (settings.sales_tax_base, settings.broker_fee_base) == (0.075, 0.03)
    with pytest.raises(EsiNotConfigured):  # no contact: ESI is not called
        esi_config(settings)
    assert "esi-markets.read_character_orders.v1" in settings.scopes


def test_the_user_agent_names_the_app_and_the_contact() -> None:
    agent = esi_config(MarketSettings(contact="ops@example.com")).user_agent
    assert agent.startswith("Pentad-market/")
    assert agent.endswith(" (ops@example.com)")


def test_settings_come_from_pentad_market_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PENTAD_MARKET__HUBS", "jita:60003760:10000002,perimeter:1035466617946:10000002")
    monkeypatch.setenv("PENTAD_MARKET__ESI_SECRET", "s3cret")
    monkeypatch.setenv("PENTAD_MARKET__ORDER_RETENTION_HOURS", "12")
    market = Settings(_env_file=None).app_settings("market", MarketSettings)
    assert [hub.key for hub in market.hub_list] == ["jita", "perimeter"]
    assert market.esi_secret == SecretStr("s3cret")
    assert "s3cret" not in repr(market)
    assert market.order_retention_hours == 12


TOMORROW = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"hubs": "jita"}, "key:station_id:region_id"),
        ({"hubs": "jita:60003760:10000002,jita:60008494:10000043"}, "named twice"),
        ({"hubs": ""}, "at least one hub"),
        ({"compatibility_date": "yesterday"}, "YYYY-MM-DD"),
        ({"compatibility_date": TOMORROW}, "in the future"),
        ({"esi_base_url": "esi.evetech.net"}, "http(s) URL"),
        ({"openai_base_url": "ftp://example.com"}, "http(s) URL"),
        ({"contact": "me (really)"}, "no parentheses"),
        ({"sso_callback_path": "market/sso"}, "starting with /"),
        ({"esi_user_limit": "lots"}, "30/minute"),
        ({"downtime": "11:00"}, "HH:MM-HH:MM"),
        ({"esi_reserve_fraction": 1.5}, "less than 1"),
        ({"market_cache_min": 1000, "market_cache_max": 900}, "MARKET_CACHE_MIN"),
        ({"anthropic_api_key": "sk-ant"}, "ANTHROPIC_MODEL is required"),
        ({"openai_api_key": "sk-x"}, "OPENAI_MODEL is required"),
        ({"scopes": "esi-markets.read_character_orders.v1,bad scope"}, "not an ESI scope"),
        ({"push_subject": "ops@example.com"}, "mailto:"),
        ({"order_retention_hours": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_values_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        MarketSettings.model_validate(values)


def test_a_key_with_its_model_is_accepted_and_kept_secret() -> None:
    settings = MarketSettings.model_validate({"anthropic_api_key": "sk-ant-1", "anthropic_model": "a-model"})
    assert settings.anthropic_api_key is not None
    assert "sk-ant-1" not in settings.model_dump_json()
