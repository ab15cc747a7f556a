import pytest

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.io.cases import read_case_csv, relative_to_table


def test_rows_columns_and_relative_paths(tmp_path):
    table = tmp_path / "cases.csv"
    table.write_text("Case, CT ,mri,extra\na,a_ct.nii.gz,/abs/a_mri.nii.gz,x\n\n b ,b_ct.nii.gz,b_mri.nii.gz,\n")
    rows = read_case_csv(table, ("case", "ct", "mri"), ("mask",))
    assert [(r["case"], r["ct"], r["_line"]) for r in rows] == [("a", "a_ct.nii.gz", "2"), ("b", "b_ct.nii.gz", "4")]
    assert relative_to_table(table, rows[0]["ct"]) == tmp_path / "a_ct.nii.gz"
    assert str(relative_to_table(table, rows[0]["mri"])) == "/abs/a_mri.nii.gz"


@pytest.mark.parametrize(
    "text,message",
    [
        ("case,ct\na,b\n", r"needs the columns case, ct, mri \(missing: mri\)"),
        ("case,ct,mri\na,,c\n", "line 2 has an empty case or ct or mri"),
        ("case,ct,mri\na,b,c\na,d,e\n", "case a appears twice"),
        ("case,ct,mri\n", "lists no cases"),
    ],
)
def test_problems_are_one_line_errors(tmp_path, text, message):
    table = tmp_path / "t.csv"
    table.write_text(text)
    with pytest.raises(Ct2mriError, match=message):
        read_case_csv(table, ("case", "ct", "mri"))


def test_missing_file(tmp_path):
    with pytest.raises(Ct2mriError, match="no such file"):
        read_case_csv(tmp_path / "none.csv", ("case",))
