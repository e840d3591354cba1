"""Execute ``notebooks/NAME.ipynb`` with papermill, render HTML.

The notebook runs in the project's registered kernel (``report.kernel``) with the repo
root as working directory, so it behaves the same on any machine. It gets the values it
declares in its ``parameters`` cell: variant lists and report settings from params.yaml,
folders from the command line (dvc.yaml owns them). Outputs, under ``--out``:
``executed/NAME.ipynb`` and ``NAME.html`` (no input cells; titled after the notebook's first
heading, with a navigation bar to every page), both written only when the whole notebook
succeeded: papermill fills the notebook in a temporary folder outside the outputs, so a killed
run leaves nothing half-done among them; figures and tables in ``figures/NAME/`` and
``tables/NAME/``. A failing cell is reported in one line (a DataError inside the notebook
keeps its message); the full traceback stays in ``executed/NAME.failed.ipynb`` until the next
run of the report, which first removes it, the ``.NAME.running.ipynb`` of older versions, and
temporary files of killed atomic writes (see :func:`propy.runtime.files.prepare_output`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from propy.config import Layout, Params, load_params
from propy.errors import ConfigError, DataError, PropyError
from propy.reports.text import GLOSSARY_ANCHOR, PAGES
from propy.runtime.files import atomic_write_text, atomic_write_with, prepare_output

NOTEBOOKS = Path("notebooks")


class NotebookError(PropyError):
    """A cell of a report notebook raised; the message names the notebook and cell."""


def available() -> list[str]:
    """The report notebooks, in reading order (``report_text.PAGES``, then any others by name)."""
    names = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    return [n for n in PAGES if n in names] + sorted(names - set(PAGES))


def notebook_values(
    params: Params, params_path: str, name: str, layout: Layout, folders: dict[str, Path]
) -> dict[str, Any]:
    """Every value a report notebook may declare; each notebook receives the ones it declares."""
    out = folders["out"]
    study, report = params.study, params.report
    return {
        "params_path": params_path,
        "dataset": params.dataset,
        "trained": study.trained,
        "zero_shot": study.zero_shot,
        "ablations": study.ablations,
        "headline": report.headline,
        "top_k": report.top_k,
        "data_root": str(layout.data),
        "cache_root": str(layout.cache),
        "num_frames": params.model.num_frames,
        "ks": params.eval.ks,
        "ratio_bins": params.eval.ratio_bins,
        "iou_thresholds": params.eval.iou_thresholds,
        "metrics_dir": str(folders["metrics"]),
        "logs_dir": str(folders["logs"]),
        "results_dir": str(folders["results"]),
        "runs_dir": str(folders["runs"]),
        "seeds": study.seeds,
        "sweep_path": str(folders.get("sweep") or ""),
        "gap_sweep_path": str(folders.get("gap_sweep") or ""),
        "caption_gap": params.pretrain_clip.caption_gap,
        "figures_dir": str(out / "figures" / name),
        "tables_dir": str(out / "tables" / name),
        "report_names": [n for n in available() if n != "index"],
    }


def execute(notebook: Path, output: Path, values: dict[str, Any], kernel: str, failed: Path) -> None:
    """Run ``notebook`` into ``output``; cell failures become NotebookError / DataError, the executed
    copy (with the traceback) moved to ``failed``."""
    import papermill
    from jupyter_client.kernelspec import NoSuchKernel
    from traitlets.config import Config

    declared = papermill.inspect_notebook(str(notebook))
    # CurveZMQ keys for a kernel that declares support (ipykernel does): otherwise ipykernel warns
    # "running over TCP without encryption" on every report
    encrypted = Config({"KernelManager": {"transport_encryption": "auto"}})
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters={k: v for k, v in values.items() if k in declared},
            kernel_name=kernel,
            cwd=str(Path.cwd()),
            progress_bar=False,
            log_output=False,
            config=encrypted,
        )
    except NoSuchKernel:
        raise ConfigError(
            f"report.kernel: Jupyter kernel {kernel!r} is not installed; `make install` registers it"
        ) from None
    except papermill.PapermillExecutionError as exc:
        shutil.move(output, failed)
        if exc.ename in (DataError.__name__, ConfigError.__name__):
            raise (DataError if exc.ename == DataError.__name__ else ConfigError)(exc.evalue) from None
        raise NotebookError(
            f"{notebook}: cell {exc.exec_count} failed: {exc.ename}: {exc.evalue} (full traceback in {failed})"
        ) from None


def failed_path(executed: Path) -> Path:
    """Where the executed copy of a notebook whose cell failed is kept for its traceback."""
    return executed.with_name(f"{executed.stem}.failed.ipynb")


def page_title(book, dataset: str) -> str:
    """ "ProPy study (<dataset>): <first Markdown heading>" (the notebook's name when it has no heading)."""
    for cell in book.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return f"ProPy study ({dataset}): {line[2:].strip()}"
    return f"ProPy study ({dataset}): {book.metadata.get('name', 'report')}"


def nav_html(current: str, names: list[str], dataset: str) -> str:
    """A bar naming the dataset and linking every page (``<name>.html``, next to each other in the output
    folder) and the overview's glossary of terms and variants."""
    links = " | ".join(
        f"<b>{PAGES.get(n, (n,))[0]}</b>" if n == current else f'<a href="{n}.html">{PAGES.get(n, (n,))[0]}</a>'
        for n in names
    )
    links += f' | <a href="index.html#{GLOSSARY_ANCHOR}">Glossary</a> | dataset: <b>{dataset}</b>'
    return f'<nav class="pages" style="padding:0.4em 0;border-bottom:1px solid #ccc">{links}</nav>'


def to_html(executed: Path, name: str, names: list[str], dataset: str) -> str:
    """The executed notebook as HTML without input cells, its title set and a navigation bar on top."""
    import nbconvert
    import nbformat

    book = nbformat.read(executed, as_version=4)
    book.metadata["title"] = page_title(book, dataset)
    book.cells.insert(0, nbformat.v4.new_markdown_cell(nav_html(name, names, dataset)))
    exporter = nbconvert.HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(book)
    return body


def render(name: str, params_path: str, layout: Layout, folders: dict[str, Path]) -> Path:
    """Execute and render one report into ``folders["out"]``; returns the HTML path."""
    params = load_params(params_path)
    out = folders["out"]
    notebook = NOTEBOOKS / f"{name}.ipynb"
    if not notebook.is_file():
        raise DataError(f"{notebook}: no such report notebook; available: {', '.join(available()) or 'none'}")
    values = notebook_values(params, params_path, name, layout, folders)
    for key in ("figures_dir", "tables_dir"):
        prepare_output(values[key], folder=True)
        Path(values[key]).mkdir(parents=True, exist_ok=True)
    executed = out / "executed" / f"{name}.ipynb"
    html = out / f"{name}.html"
    for path in (executed, html):
        prepare_output(path)
    for stale in (executed.with_name(f".{name}.running.ipynb"), failed_path(executed)):
        stale.unlink(missing_ok=True)
    executed.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"propy-report-{name}-") as scratch:
        running = Path(scratch) / f"{name}.ipynb"
        execute(notebook, running, values, params.report.kernel, failed_path(executed))
        for key in ("figures_dir", "tables_dir"):  # DVC warns about an empty output folder on every run
            folder = Path(values[key])
            if not any(folder.iterdir()):
                atomic_write_text(folder / "NONE.txt", f"report {name} wrote nothing here with these inputs\n")
        atomic_write_text(html, to_html(running, name, available(), params.dataset))
        atomic_write_with(executed, lambda tmp: shutil.copyfile(running, tmp))
    return html
