"""Monash .tsf reader and App. D.1 normalisation."""

import numpy as np
import pytest

from pyro_dssm.data.monash import load_tsf, normalise_series, read_tsf

TSF = """# a hand-written file in the Monash format
@relation tiny
@attribute series_name string
@attribute start_timestamp date
@frequency daily
@horizon 3
@missing true
@equallength false
@data
T1:2020-01-01 00-00-00:1,2,3,4,5
T2:2020-01-01 00-00-00:10,?,30,40
T3:2020-01-02 00-00-00:-1,-1,-1
T4:2020-01-03 00-00-00:0,5,10,5,0,5
"""


def write(tmp_path, text=TSF):
    p = tmp_path / "tiny.tsf"
    p.write_text(text)
    return p


def test_read_tsf(tmp_path):
    d = read_tsf(write(tmp_path))
    assert d.attribute_names == ["series_name", "start_timestamp"]
    assert d.metadata["frequency"] == "daily" and d.metadata["horizon"] == "3"
    assert [len(s) for s in d.series] == [5, 4, 3, 6]
    assert d.attributes[3] == {"series_name": "T4", "start_timestamp": "2020-01-03 00-00-00"}
    assert np.isnan(d.series[1][1]) and d.series[1][2] == 30


def test_normalisations():
    x = np.array([1.0, 2.0, 3.0, np.nan])
    z = normalise_series(x, "zscore")
    assert np.nanmean(z) == pytest.approx(0) and np.nanstd(z) == pytest.approx(1)
    np.testing.assert_allclose(normalise_series(x, "minmax")[:3], [0, 0.5, 1])
    np.testing.assert_array_equal(normalise_series(np.full(3, 7.0), "zscore"), np.zeros(3))  # constant: no 0/0
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalise_series(x, "robust")


def test_load_tsf_corpus(tmp_path):
    path = write(tmp_path)
    with pytest.raises(ValueError, match="series 'T2' has 1 missing"):
        load_tsf(path)
    c = load_tsf(path, missing="interpolate", normalise="minmax", test_fraction=0.25, valid_fraction=0.25)
    ids = {i: s for s in c.splits for i in c.ids[s]}
    assert sorted(ids) == ["T1", "T2", "T3", "T4"] and c.x_dim == 1
    t2 = c.splits[ids["T2"]][c.ids[ids["T2"]].index("T2")][:, 0]
    np.testing.assert_allclose(t2, [0, 1 / 3, 2 / 3, 1])  # 20 interpolated, then squashed into [0, 1]
    assert all(float(x.min()) >= 0 and float(x.max()) <= 1 for s in c.splits for x in c.splits[s])
    dropped = load_tsf(path, missing="drop", max_length=2, test_fraction=0.25, valid_fraction=0.25)
    assert sorted(i for s in dropped.splits for i in dropped.ids[s]) == ["T1", "T3", "T4"]
    assert all(len(x) == 2 for s in dropped.splits for x in dropped.splits[s])
    with pytest.raises(ValueError, match="2 usable series; need at least 3"):
        load_tsf(write(tmp_path, TSF.replace("T4:2020-01-03 00-00-00:0,5,10,5,0,5\n", "")), missing="drop")


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="forecastingdata.org"):
        read_tsf(tmp_path / "missing.tsf")
    with pytest.raises(ValueError, match="no @data"):
        read_tsf(write(tmp_path, "@relation x\n@attribute series_name string\n"))
    with pytest.raises(ValueError, match="line 3: a value is not a number"):
        read_tsf(write(tmp_path, "@attribute series_name string\n@data\nA:1,x,3\n"))
    with pytest.raises(ValueError, match="line 4: expected 2 attribute"):
        read_tsf(write(tmp_path, "@attribute a string\n@attribute b string\n@data\nA:1,2,3\n"))


def test_aeon_ships_a_real_tsf_file():
    aeon = pytest.importorskip("aeon")
    from pathlib import Path

    files = list(Path(aeon.__file__).parent.rglob("m1_yearly_dataset.tsf"))
    if not files:
        pytest.skip("this aeon version does not ship m1_yearly_dataset.tsf")
    d = read_tsf(files[0])
    assert len(d.series) > 100 and d.metadata.get("frequency") == "yearly"


def test_tsf_through_the_run_config(tmp_path):
    from pyro_dssm.config import TrainConfig
    from pyro_dssm.training.engine import build_corpus

    path = write(tmp_path)
    c = build_corpus(TrainConfig(data=str(path), data_options={"series_missing": "interpolate", "series_normalise": "zscore"}))
    assert c.name == "tiny" and c.x_dim == 1
    assert all(abs(float(x.mean())) < 1e-5 for s in c.splits for x in c.splits[s] if x.std() > 0)
    with pytest.raises(ValueError, match="series_missing"):
        TrainConfig(data_options={"series_missing": "ignore"})


def test_named_monash_datasets(tmp_path):
    from pyro_dssm.data.monash import load_monash

    with pytest.raises(FileNotFoundError, match="forecastingdata.org"):
        load_monash("fred-md", tmp_path)
    with pytest.raises(ValueError, match="unknown Monash dataset"):
        load_monash("m4", tmp_path)
    (tmp_path / "monash").mkdir()
    (tmp_path / "monash" / "temperature_rain_dataset_without_missing_values.tsf").write_text(
        TSF.replace("10,?,30,40", "10,20,30,45"))
    c = load_monash("temperature-rain", tmp_path, test_fraction=0.25, valid_fraction=0.25)
    # App. D.1: Temperature Rain is squashed into [0, 1] per series
    assert c.name == "temperature-rain"
    assert all(float(x.min()) == 0 and float(x.max()) == 1 for s in c.splits for x in c.splits[s] if x.std() > 0)
