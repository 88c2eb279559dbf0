"""The `realbogus` command: one Typer app, one module per command group. No logic here."""

from __future__ import annotations

import typer

from . import crowd, demo, evaluate, images, label, models, package, score, simulate, train

app = typer.Typer(
    name="realbogus",
    help=(
        "Reliability (real/bogus) scores for difference-imaging detections, after Rubin's "
        "DMTN-337: score images, stamp datasets and alert packets; simulate surveys; train, "
        "evaluate and compare model versions."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(models.models)
app.command()(score.score)
app.command()(train.train)
app.command("evaluate")(evaluate.evaluate_command)
app.command()(simulate.simulate)
app.command("template")(images.template)
app.command("inject")(images.inject)
app.command("variables")(images.variables)
app.command()(demo.demo)
app.add_typer(package.package_app, name="package")
app.add_typer(crowd.crowd_app, name="crowd")
app.add_typer(label.label_app, name="label")

if __name__ == "__main__":
    app()
