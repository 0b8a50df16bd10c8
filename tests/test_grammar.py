"""A setting's text has one grammar: the CLI, a link, the sidebar and the sweep form read an integer
and a width alike, and a width is written back one way (engine/values.py)."""

from __future__ import annotations

import pytest

from engine.cli.main import main
from engine.cli.parser import build_parser, config_from_args
from engine.config import RunConfig, settings
from engine.errors import ConfigError
from engine.labels import run_label, width_label
from engine.values import format_width, parse_int, parse_int_list

# Text Python's int() reads but the grammar does not: "1_0" is 10 and "٣" (Arabic-Indic) is 3 to
# int(); the rest are not integers written in digits at all.
NOT_DIGITS = ["1_0", "٣", "１２", "1e3", "0x10", "2.0", "", " ", "1 0", "--3"]
READ = {"7": 7, " 7 ": 7, "+7": 7, "007": 7}


def cli(capsys, *argv: str) -> tuple[int, list[str]]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, err.strip().splitlines()


# ----------------------------------------------------------------- integers
@pytest.mark.parametrize("text", NOT_DIGITS)
@pytest.mark.parametrize("argv, name", [
    (["bench", "--quick", "--threads"], "threads"),
    (["bench", "--quick", "--rounds"], "rounds"),
    (["bench", "--quick", "--steps"], "steps"),
    (["serve", "--port"], "port"),
    (["train", "--no-save", "--quiet", "--depth"], "depth"),
    (["train", "--no-save", "--quiet", "--steps"], "steps"),
], ids=["bench threads", "bench rounds", "bench steps", "serve port", "train depth", "train steps"])
def test_the_cli_refuses_what_is_no_integer_in_digits_in_one_line(capsys, argv, name, text):
    rc, lines = cli(capsys, *argv[:-1], f"{argv[-1]}={text}")
    assert rc == 2 and lines == [f"creditlab: error: {name}={text!r} is not allowed; it must be an "
                                 "integer, in digits"]


@pytest.mark.parametrize("flag, name", [("--seeds", "seeds"), ("--samples", "samples"), ("--seed", "seed"),
                                        ("--workers", "workers")])
def test_a_sweep_flag_refuses_them_in_one_line_naming_itself(capsys, tmp_path, flag, name):
    for text in ("1_0", "٣"):
        rc, lines = cli(capsys, "sweep", flag, text, "--dry-run", "--out", str(tmp_path))
        assert rc == 2 and lines == [f"creditlab: error: {name}={text!r} is not allowed; it must be an "
                                     "integer, in digits"]


@pytest.mark.parametrize("argv, line", [
    (["serve", "--port", "70000"], "port=70000 is not allowed; it must be an integer >= 1 and <= 65,535"),
    (["serve", "--port", "0"], "port=0 is not allowed; it must be an integer >= 1 and <= 65,535"),
    (["bench", "--threads", "0"], "threads=0 is not allowed; it must be an integer >= 1 and <= 2,147,483,647"),
    (["bench", "--threads", str(2**31)], "threads=2147483648 is not allowed; it must be an integer >= 1 "
     "and <= 2,147,483,647"),                            # torch.set_num_threads raised on it
    (["bench", "--rounds", "9" * 5000], "rounds=999999999999… (5,000 digits) is not allowed; it must be an "
     "integer >= 1 and <= 9,223,372,036,854,775,807"),
])
def test_a_command_flag_is_bounded(capsys, argv, line):
    rc, lines = cli(capsys, *argv)
    assert rc == 2 and lines == [f"creditlab: error: {line}"]


@pytest.mark.parametrize("text", NOT_DIGITS + list(READ))
def test_every_reader_of_an_integer_reads_the_same_text_alike(text):
    """The CLI's flags, a link and the sidebar (a Setting's read_int), the sweep form (IntBox) and
    engine/values.py's parse_int give the same number, or refuse the same text."""
    from app.int_box import IntBox
    from app.state import ConfigState, read_number

    readers = [lambda t: parse_int("depth", t), lambda t: settings()["depth"].read_int("depth", t),
               lambda t: read_number(ConfigState.param["depth"], t),
               lambda t: IntBox("depth", "Depth", 2, start=1).read(t),
               lambda t: config_from_args(build_parser(only="train").parse_args(
                   ["train", f"--depth={t}", "--width=8"])).depth]
    results = []
    for read in readers:
        try:
            results.append(read(text))
        except ConfigError as exc:
            results.append(str(exc))
    assert results == [READ[text] if text in READ else
                       f"depth={text!r} is not allowed; it must be an integer, in digits"] * len(readers)


def test_a_setting_reads_what_int64_holds_and_leaves_its_bounds_to_validate():
    """A link's steps=-1 is applied, then named by validate(); text beyond int64 is refused at
    once, naming the setting's own bounds."""
    steps = settings()["steps"]
    assert steps.read_int("steps", "-1") == -1
    with pytest.raises(ConfigError, match=r"^steps=-1 is not allowed; it must be an integer >= 1 "):
        RunConfig(steps=-1).validate()
    with pytest.raises(ConfigError, match=r"^steps=9223372036854775808 is not allowed; it must be an "
                                          r"integer >= 1 and <= 1,000,000,000,000$"):
        steps.read_int("steps", str(2**63))
    assert parse_int("n", "9", 1, 9) == 9
    with pytest.raises(ConfigError, match=r"^n=10 is not allowed; it must be an integer >= 1 and <= 9$"):
        parse_int("n", "10", 1, 9)


def test_the_config_module_has_no_integer_reader_of_its_own():
    import engine.config

    assert not hasattr(engine.config, "parse_int")


# ----------------------------------------------------------------- widths
@pytest.mark.parametrize("width, text", [(50, "50"), ([50, 20], "50,20"), ([8, 8, 8], "8,8,8")])
def test_a_width_is_written_one_way_and_read_back(width, text):
    from app.state import ConfigState, parse_width

    assert format_width(width) == text
    assert parse_int_list("width", text) == width and parse_width(text) == width
    args = build_parser(only="train").parse_args(["train", "--width", text])
    assert config_from_args(args).width == width
    state = ConfigState()
    state.set_config(RunConfig(width=width, depth=1 if isinstance(width, int) else len(width)))
    assert state.width == text and state.to_query()["width"] == text
    assert state.to_config().width == width
    # Tables and legends join the layers as a network's shape is written: the same text otherwise.
    assert width_label(width) == text.replace(",", "-")
    assert f" w{width_label(width)} " in run_label(RunConfig(width=width))


def test_the_cli_help_shows_a_default_width_as_the_flag_takes_it(capsys):
    rc = main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert rc == 0 and f"(default: {format_width(RunConfig().width)})" in help_text


def test_text_typed_for_a_width_is_shown_as_it_is():
    assert format_width("50, 20") == "50, 20" and width_label("abc") == "abc"


# ----------------------------------------------------------------- the number box
def test_the_sidebar_and_the_sweep_form_share_one_number_box():
    """The box the sidebar binds to a ConfigState setting, and the sweep form's IntBox: a number
    sets the value, anything else is kept with its message, and a value set from code replaces it."""
    import param

    from app.int_box import IntBox
    from app.number_box import number_box

    class Owner(param.Parameterized):
        n = param.Integer(default=3)
        unreadable = param.Dict(default={})

    owner = Owner()
    owner.param.watch(lambda e: setattr(owner, "unreadable", {}) if owner.unreadable else None, "n")
    box = number_box(owner, "n", lambda t: parse_int("n", t, 0, 9), label="N")
    int_box = IntBox("n", "N", 3, start=0, end=9)
    for b, o, key in ((box, owner, "n"), (int_box.box, int_box, "value")):
        assert b.value == "3"
        b.value = "+4"
        assert getattr(o, key) == 4 and o.unreadable == {} and b.value == "+4"     # the user's spelling
        b.value = "1_0"
        assert getattr(o, key) == 4 and b.value == "1_0"
        assert o.unreadable == {key: "n='1_0' is not allowed; it must be an integer, in digits"}
        b.value = "10"
        assert o.unreadable == {key: "n=10 is not allowed; it must be an integer >= 0 and <= 9"}
        setattr(o, key, 5)                                           # from code
        assert b.value == "5" and o.unreadable == {}
