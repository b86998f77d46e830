"""Settings are typed and checked at start-up; a bad value names its variable."""

import pytest

from flux_api import create_app
from flux_api.config.settings import DEFAULT_CF_API_BASE, SettingsError, load_settings


def test_defaults_match_the_original_worker(tmp_path):
    settings = load_settings({"DATA_DIR": str(tmp_path)})
    assert settings.flux_model == "@cf/black-forest-labs/flux-1-schnell"
    assert settings.flux_num_steps == 4
    assert settings.image_expiration == 604_800  # a week: chats link their images
    assert settings.prompt_optimization is False
    assert settings.cors_origins == ("*",)
    assert settings.upstream_timeout == 120 and settings.optimizer_timeout == 30
    assert settings.store_size_limit_mb == 1024
    assert settings.cf_api_base == DEFAULT_CF_API_BASE
    assert settings.models[0].id == settings.flux_model
    assert len(settings.models) == 11  # 9 text-to-image, 2 that only edit


def test_account_id_and_token_are_a_pool_of_one():
    settings = load_settings({"CF_ACCOUNT_ID": "abc", "CF_API_TOKEN": "t"})
    assert [(a.id, a.token) for a in settings.accounts] == [("abc", "t")]
    assert settings.workers_ai_url == DEFAULT_CF_API_BASE  # {account_id} is filled per call
    assert settings.cloudflare_configured


def test_an_ai_gateway_url_needs_no_account_placeholder():
    gateway = "https://gateway.ai.cloudflare.com/v1/abc/my-gateway/workers-ai/"
    settings = load_settings({"CF_API_BASE": gateway, "CF_API_TOKEN": "t"})
    assert settings.workers_ai_url == gateway.rstrip("/")
    assert settings.cloudflare_configured


def test_image_models_restricts_the_list_and_keeps_the_default_first():
    settings = load_settings(
        {"IMAGE_MODELS": "phoenix-1.0, @cf/lykon/dreamshaper-8-lcm", "FLUX_MODEL": "flux-2-dev"}
    )
    assert [m.id for m in settings.models] == [
        "@cf/black-forest-labs/flux-2-dev",
        "@cf/leonardo/phoenix-1.0",
        "@cf/lykon/dreamshaper-8-lcm",
    ]


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"FLUX_NUM_STEPS": "four"}, "FLUX_NUM_STEPS"),
        ({"FLUX_NUM_STEPS": "0"}, "FLUX_NUM_STEPS"),
        ({"IMAGE_EXPIRATION": "-5"}, "IMAGE_EXPIRATION"),
        ({"STORE_SIZE_LIMIT_MB": "1.5"}, "STORE_SIZE_LIMIT_MB"),
        ({"UPSTREAM_TIMEOUT": "soon"}, "UPSTREAM_TIMEOUT"),
        ({"PROMPT_OPTIMIZATION": "maybe"}, "PROMPT_OPTIMIZATION"),
        ({"PROMPT_OPTIMIZATION": "true"}, "EXTERNAL_API_BASE"),
        ({"FLUX_MODEL": "dall-e-3"}, "FLUX_MODEL"),
        ({"IMAGE_MODELS": "flux-1-schnell,sdxl"}, "IMAGE_MODELS"),
        ({"PUBLIC_BASE_URL": "example.com"}, "PUBLIC_BASE_URL"),
        ({"CF_API_BASE": "ftp://x"}, "CF_API_BASE"),
        ({"EXTERNAL_API_BASE": "not a url"}, "EXTERNAL_API_BASE"),
    ],
)
def test_bad_values_stop_the_start_naming_the_variable(tmp_path, env, variable):
    with pytest.raises(SettingsError) as caught:
        create_app({"API_KEY": "k", "DATA_DIR": str(tmp_path), **env})
    assert variable in str(caught.value)


def test_dotenv_in_the_working_directory_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("FLUX_NUM_STEPS=6\nIMAGE_EXPIRATION=99\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMAGE_EXPIRATION", "77")
    settings = load_settings()
    assert settings.flux_num_steps == 6
    assert settings.image_expiration == 77


def test_edit_model_defaults_to_flux2_klein_4b_and_must_edit():
    assert load_settings({}).edit_model == "@cf/black-forest-labs/flux-2-klein-4b"
    with pytest.raises(SettingsError, match="EDIT_MODEL names an unknown model that edits"):
        load_settings({"EDIT_MODEL": "flux-1-schnell"})
    with pytest.raises(SettingsError, match="FLUX_MODEL names an unknown text-to-image model"):
        load_settings({"FLUX_MODEL": "stable-diffusion-v1-5-img2img"})


@pytest.mark.parametrize(
    "image_models, edit_model",
    [
        ("flux-1-schnell,flux-2-dev", "@cf/black-forest-labs/flux-2-dev"),  # the first that edits
        ("flux-1-schnell", None),  # none edits: editing answers a 400 saying so
    ],
)
def test_edit_model_follows_image_models(image_models, edit_model):
    assert load_settings({"IMAGE_MODELS": image_models}).edit_model == edit_model


@pytest.mark.parametrize(
    "env, capacity",
    [
        ({}, 120),  # 128 threads, 8 kept for cheap requests
        ({"GUNICORN_THREADS": "6"}, 5),  # a quarter of few threads kept
        ({"GUNICORN_THREADS": "1"}, 1),  # none kept: the one thread runs generations
        ({"GUNICORN_THREADS": "6", "GENERATION_RESERVE": "2"}, 4),
    ],
)
def test_a_worker_holds_its_threads_less_the_reserve(env, capacity):
    assert load_settings(env).generation_capacity == capacity


@pytest.mark.parametrize(
    "env, message",
    [
        ({"GUNICORN_THREADS": "4", "GENERATION_RESERVE": "4"}, "GENERATION_RESERVE (4) must be"),
        ({"KEY_SHARE": "1.5"}, "KEY_SHARE must be a fraction"),
        ({"KEY_SHARE": "0"}, "KEY_SHARE must be at least"),
        ({"ADMISSION_WAIT": "-1"}, "ADMISSION_WAIT must be at least 0"),
        ({"ADMISSION_WAIT": "soon"}, "ADMISSION_WAIT must be"),
    ],
)
def test_admission_settings_are_checked(env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env)
