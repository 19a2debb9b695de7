## reports/index.html, rendered by matrix.report.html. Every ${...} is HTML-escaped
## (default_filters=["h"]); only the SVG charts drawn by matrix.report.html use "| n".
<%def name="breakable(name)">\
% for part in name.split("_"):
${part}\
% if not loop.last:
_<wbr>\
% endif
% endfor
</%def>\
<%def name="mark(status)">\
<span class="mark ${status}">${marks[status]}</span>\
</%def>\
<%def name="check_cell(target, check)">\
% if check is None:
<td class="check"></td>\
% else:
<td class="check ${check.status}" title="${check.name}: ${check.status}, ${format(check.duration_s, ".2f")} s">\
% if discloses(check):
<a href="#${anchor(target.id, check.name)}">${mark(check.status)}\
% if check.status == Status.PASSED:
<sup>notes</sup>\
% endif
</a>\
% else:
${mark(check.status)}\
% endif
</td>\
% endif
</%def>\
<%def name="check_why(target, why)">
<% check = why.check %>\
<div class="why-check ${check.status}" id="${anchor(target.id, check.name)}">
<h4>${mark(check.status)} ${check.name}\
% if check.status == Status.PASSED:
 <span class="note">(passed, with notes)</span>\
% endif
</h4>
% if why.reason:
<p>${why.reason}</p>
% endif
% if why.blames:
<table class="findings"><thead><tr><th>kind</th><th>revision</th><th>finding</th><th>verdict</th></tr></thead><tbody>
% for blame in why.blames:
% for index, finding in enumerate(blame.findings):
<% own = split_code(finding.detail)[0] %>\
<tr${' id="%s"' % anchor(target.id, check.name, blame.anchor) if index == 0 else "" | n}><td><code>${finding.kind}</code></td><td><code>${finding.revision or "-"}</code></td><td>${finding.message}\
% if own:
<details><summary>the difference</summary><pre>${own}</pre></details>\
% endif
</td><td>${"waived" if finding.waived else "blocking" if finding.blocking else "note"}</td></tr>
% endfor
% if blame.code:
<tr class="code"><td colspan="4"><details><summary>code and SQL of ${blame.revision}</summary><pre>${blame.code}</pre></details></td></tr>
% endif
% endfor
</tbody></table>
% endif
% for reason, count in why.waivers:
<p class="waiver">${mark(Status.WAIVED)} waived by the policy (${plural(count, "finding")}): ${reason}</p>
% endfor
% if check.warnings:
<ul class="warnings">
% for warning in check.warnings:
<li>warning: ${warning}</li>
% endfor
</ul>
% endif
% if why.detail:
<details><summary>detail</summary><pre>${why.detail}</pre></details>
% endif
% if why.advice:
<p class="todo"><b>What to do:</b></p><ul class="todo">
% for kind, advice in why.advice:
<li><code>${kind}</code>: ${advice}</li>
% endfor
</ul>
% endif
% if why.entries:
<p class="todo">Or acknowledge it: paste into the policy file and write the reason:</p>
<pre class="entry">${"\n\n".join(why.entries)}</pre>
% endif
</div>
</%def>\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${report.plugin.name} ${report.plugin.version}: ${marks[report.status]}</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; color: #1d1d1f; margin: 0; background: #f6f7f9; }
main { max-width: 1400px; margin: 0 auto; padding: 16px 20px 48px; box-sizing: border-box; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 28px 0 8px; }
h3 { font-size: 17px; margin: 18px 0 6px; } h4 { font-size: 15px; margin: 12px 0 4px; }
.meta { color: #555; margin: 0 0 4px; } code { font-size: 13px; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid #d5d8dd; padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #eef0f3; font-weight: 600; font-size: 12px; }
#matrix { width: 100%; } #matrix td, #matrix th { padding: 4px 4px; }
#matrix th { font-size: 11px; } .nowrap { white-space: nowrap; } .scroll { overflow-x: auto; }
#matrix th:first-child, #matrix td:first-child { position: sticky; left: 0; z-index: 1;
  background: #fff; box-shadow: 1px 0 0 #d5d8dd; }
#matrix th:first-child { background: #eef0f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
#matrix td.check { text-align: center; }
td.check a { text-decoration: none; } td.check sup { font-size: 9px; color: #444; }
.passed { background: #d9f2df; } .waived { background: #e9f3c9; } .failed { background: #fbd5d5; }
.error { background: #f6c7a8; } .not_run { background: #eceae4; color: #555; }
.mark { display: inline-block; font: 700 11px/16px system-ui, sans-serif; letter-spacing: .02em;
  padding: 0 5px; border-radius: 3px; border: 1.5px solid; white-space: nowrap; }
.mark.passed { color: #14532d; border-color: #2f8f4e; background: #fff; }
.mark.waived { color: #3f5212; border-color: #7a9a2a; border-style: dashed; background: #fff; }
.mark.failed { color: #fff; background: #b42318; border-color: #b42318; }
.mark.error { color: #fff; background: #9a3412; border-color: #431407; border-style: double;
  border-width: 3px; }
.mark.not_run { color: #444; background: #fff; border-color: #888; border-style: dotted; }
h1 .mark { font-size: 18px; line-height: 26px; padding: 0 8px; }
.badge { font-size: 11px; color: #fff; background: #6b7280; border-radius: 3px; padding: 0 4px; }
summary { cursor: pointer; font-weight: 600; }
.banner { padding: 8px 12px; border: 2px solid #b42318; background: #fff4f2; margin: 8px 0; }
.why-target { background: #fff; border: 1px solid #d5d8dd; padding: 4px 14px 10px; margin: 10px 0; }
.why-check { border-left: 5px solid #d5d8dd; padding: 2px 0 6px 10px; margin: 8px 0;
  background: #fff; }
.why-check.failed { border-left-color: #b42318; } .why-check.error { border-left-color: #9a3412; }
.why-check.not_run { border-left-color: #888; } .why-check.waived { border-left-color: #7a9a2a; }
.why-check.passed { border-left-color: #2f8f4e; }
.findings { width: 100%; margin: 4px 0; } .findings td, .findings th { font-size: 12.5px; }
.findings tr.code td { background: #fafafa; }
pre { white-space: pre-wrap; word-break: break-word; font-size: 12px; margin: 4px 0;
  max-height: 50vh; overflow: auto; }
pre.entry { background: #f3f4f6; border: 1px solid #d5d8dd; padding: 6px 8px; max-width: 720px; }
ul.todo, ul.warnings { margin: 2px 0 6px; } ul.summary { margin: 4px 0 10px; line-height: 1.9; } p.todo { margin: 6px 0 2px; }
tr.blamed td { background: #fff1f0; } tr.blamed td:first-child { box-shadow: inset 5px 0 0 #b42318; }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 14px; }
.chart { background: #fff; border: 1px solid #d5d8dd; padding: 6px; }
.chart svg { width: 100%; height: auto; display: block; }
.slower { background: #fbd5d5; font-weight: 600; }
.note { color: #555; font-size: 13px; } .stale { color: #9a3412; }
</style></head><body><main>
<h1>${report.plugin.name} ${report.plugin.version}: ${mark(report.status)}</h1>
<p class="meta">Plugin: <span id="provenance">${report.plugin.source.describe()}</span><br>
Wheel tested <code>${plugin_file}</code>\
% if report.plugin.wheel_sha256:
 (sha256 <code>${report.plugin.wheel_sha256}</code>)\
% endif
 · run <code>${report.run_id}</code>
started ${report.started_at} · matrix <code>${report.matrix_file}</code></p>
% if report.state == "running":
<p class="banner">The run <code>${report.run_id}</code> has not finished: these results are incomplete.</p>
% elif report.state == "interrupted":
<p class="banner">The run was interrupted: ${report.interrupted}. What each target had reached is below.</p>
% endif
<p class="meta">${policy_line}</p>
% if report.allowed_missing:
<p class="meta" id="gate">Release gate: passed with ${", ".join(report.allowed_missing)} allowed missing on purpose (<code>--allow-missing</code>): no server of theirs was reached, and the release does not claim them.</p>
% endif
% if stale_entries:
<ul class="meta stale">
% for entry in stale_entries:
<li>stale waiver (it matched nothing in this run): ${entry}</li>
% endfor
</ul>
% endif

<h2>Compatibility matrix</h2>
<div class="scroll"><table id="matrix"><thead><tr><th>target</th><th>server</th><th>status</th>
% for name in columns:
<th>${breakable(name)}</th>
% endfor
<th>seconds</th><th>SQL</th></tr></thead><tbody>
% for target in report.targets:
<% by_name = {check.name: check for check in target.checks} %>\
<tr id="target-${target.id}"><td><b class="nowrap">${target.id}</b><br>
% if target.required:
<span class="badge">required</span>
% endif
<span class="note">${target.label}</span></td>
<td class="note">${target.server_version or "-"}<br>PostGIS ${target.postgis_version or "-"}<br>${target.provider or "-"}</td>
<td class="status ${target.status}">\
% if target.id in explained:
<a href="#why-${target.id}">${mark(target.status)}</a>\
% else:
${mark(target.status)}\
% endif
</td>
% for name in columns:
${check_cell(target, by_name.get(name))}
% endfor
<td class="num">${format(target.duration_s, ".1f")}</td><td>\
% for name in sql[target.id]:
<a href="sql/${target.id}/${name}.sql" title="${name}.sql">${name}</a><br>\
% endfor
% if not sql[target.id]:
-\
% endif
</td></tr>
% endfor
</tbody></table></div>
<p class="note">\
% for status in Status:
${mark(status)} ${status} · \
% endfor
a marked cell links to its findings below: what was found, where, what to do.</p>
% if explained:
<h2 id="why">Why</h2>
% for target_id, why in explained.items():
<section class="why-target" id="why-${target_id}">
<h3>${target_id}: ${mark(why.target.status)}</h3>
% if why.reason:
<p><b>${why.reason}</b></p>
% endif
% if why.open_checks:
<ul class="summary">
% for check, revisions in why.summary():
<li><a href="#${anchor(target_id, check.check.name)}">${mark(check.check.status)} ${check.check.name}</a>\
% if revisions:
, blaming \
% for revision in revisions:
<a href="#${anchor(target_id, check.check.name, revision)}"><code>${revision}</code></a>${"" if loop.last else ", "}\
% endfor
% endif
</li>
% endfor
</ul>
% endif
% for check in why.checks:
${check_why(why.target, check)}
% endfor
</section>
% endfor
% endif
% if timelines:
<h2 id="timeline">Revisions, one by one</h2>
<p class="note">Each revision in the order a site runs them; a revision a finding blames is
marked and links to its findings.</p>
% for target_id, rows in timelines.items():
<% blamed = blamed_by[target_id] %><% scaled = any(row.scale_s is not None for row in rows) %>\
<details open><summary><b>${target_id}</b>: ${len(rows)} revisions\
% if blamed:
, ${len(blamed)} blamed\
% endif
</summary>
% if target_id in timeline_charts:
<div class="chart">${timeline_charts[target_id] | n}</div>
% endif
<div class="scroll"><table class="timeline"><thead><tr><th>revision</th><th>findings</th>
<th title="seconds the step up took">up s</th><th title="seconds the step down took">down s</th>
<th>changes</th><th>rows written</th>
% if scaled:
<th>s at scale</th><th>rows already in the schema</th><th>longest lock on a table with rows</th><th>tables rewritten</th><th>squawk</th>
% endif
</tr>
<tr class="note"><td colspan="2">blamed revisions marked</td><td colspan="2">the step's own time, stepwise walk</td><td>what the step changed</td><td>by data_survives</td>
% if scaled:
<td>--scale: every table filled first</td><td>before it ran, in all tables together</td><td>red: blocks reads and writes; "no lock": measured, none held; "not sampled": did not run at scale</td><td>storage rewritten</td><td>rules hit</td>
% endif
</tr></thead><tbody>
% for row in rows:
<tr${' class="blamed"' if row.revision in blamed else "" | n}><td><code>${row.revision}</code></td><td>\
% for hit in blamed.get(row.revision, []):
<a href="#${anchor(target_id, hit.check, row.revision)}">${mark(hit.status)} ${hit.check}: ${hit.kind}${"" if hit.count == 1 else " ×%d" % hit.count}</a><br>\
% endfor
</td>
<td class="num">${"" if row.up_s is None else format(row.up_s, ".3f")}</td>
<td class="num">${"" if row.down_s is None else format(row.down_s, ".3f")}</td>
<td class="note">${"; ".join(row.changes[:4])}${" …" if len(row.changes) > 4 else ""}</td>
<td class="note">${row.rows_written}</td>
% if scaled:
<td class="num">${"not sampled" if row.scale_s is None else format(row.scale_s, ".3f")}</td>
<td class="num">${"" if row.rows is None else format(row.rows, ",")}</td>
<td><span class="${"failed" if row.exclusive else ("note" if row.lock is None else "")}">${lock_cell(row)}</span>${"" if row.longest is None else "; longest: " + describe(row.longest)}</td>
<td>${", ".join(row.rewrites)}</td>
<td class="note">${", ".join(sorted({hit.split(":")[0] for hit in row.lint}))}</td>
% endif
</tr>
% endfor
</tbody></table></div></details>
% endfor
% endif
% if measured:
<% settings = next(iter(measured.values())).settings.to_dict() %>\
<h2 id="benchmark">Session throughput: ORM beside the raw driver</h2>
<p class="note">Bars are the median of the measured rounds, whiskers their minimum and
maximum; the percentage over the ORM bar is its share of the fastest driver method.
Settings: ${", ".join("%s %s" % item for item in settings.items())}.</p>
% if charts is None:
<p class="note">The charts need matplotlib: <code>pip install ${charts_extra}</code>.</p>
% else:
<div class="charts">
% for svg in charts:
<div class="chart">${svg | n}</div>
% endfor
</div>
% endif
<% missing = [(t, o) for t, result in measured.items() for o in result.operations if not o.figures] %>\
% if missing:
<p class="note">Not measured:</p><ul class="note">
% for target_id, operation in missing:
<li>${operation.operation} on ${target_id}: ${operation.why_not}</li>
% endfor
</ul>
% endif
<details><summary>Every figure</summary>
<table id="figures"><thead><tr><th>target</th><th>operation</th><th>layer</th><th>method</th>
<th>median</th><th>min–max</th><th>cv</th><th>unit</th><th>rounds×size</th><th>ORM/driver</th>
<th>statements/op</th></tr></thead><tbody>
% for target_id, result in measured.items():
% for operation in result.operations:
% for figure in operation.figures:
<tr><td>${target_id}</td><td>${operation.title}</td><td>${figure.layer}</td><td>${figure.method}</td>
<td class="num">${format(figure.median, ",.0f")}</td>
<td class="num">${format(figure.min, ",.0f")} – ${format(figure.max, ",.0f")}</td>
<td class="num">${format(figure.cv, ".1%")}</td><td>${figure.unit}</td>
<td>${figure.rounds} × ${figure.size}</td>
<td class="num">${format(operation.orm_to_driver, ".0%") if figure.layer == ORM else ""}</td>
<td class="num">${"" if figure.statements is None else format(figure.statements, "g")}</td></tr>
% endfor
% endfor
% endfor
</tbody></table></details>
% endif
% if comparison:
<h2 id="baseline">Compared with the baseline</h2>
<p class="note">Baseline <code>${comparison.baseline}</code> (run
<code>${comparison.baseline_run or "?"}</code>, commit
<code>${comparison.baseline_commit or "?"}</code>). <b>${comparison.slower}</b> of
${len(comparison.changes)} figures fell by more than ${format(comparison.threshold, ".0%")};
ratio is current over baseline throughput.</p>
<table id="comparison"><thead><tr><th>target</th><th>operation</th><th>figure</th>
<th>baseline</th><th>current</th><th>unit</th><th>ratio</th><th></th></tr></thead><tbody>
<% changes = sorted(comparison.changes, key=lambda change: change.ratio) %>\
% for change in changes:
<tr class="${"slower" if change.slower else ""}"><td>${change.target}</td>
<td>${change.operation}</td><td>${change.layer}: ${change.method}</td>
<td class="num">${format(change.baseline, ",.0f")}</td>
<td class="num">${format(change.current, ",.0f")}</td><td>${change.unit}</td>
<td class="num">×${format(change.ratio, ".2f")}</td><td>${"slower" if change.slower else ""}</td></tr>
% endfor
</tbody></table>
% endif
</main></body></html>
