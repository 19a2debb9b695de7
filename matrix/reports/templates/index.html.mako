## reports/index.html, rendered by matrix.reports.html. Every ${...} is HTML-escaped
## (default_filters=["h"]); only the SVG charts drawn by matrix.reports.html use "| n".
<%def name="breakable(name)">\
% for part in name.split("_"):
${part}\
% if not loop.last:
_<wbr>\
% endif
% endfor
</%def>\
<%def name="check_cell(check, side)">\
% if check is None:
<td class="check ${side}"></td>\
% else:
<td class="check ${side} ${check.status}" title="${check.name}: ${check.status}, ${format(check.duration_s, ".2f")} s">\
% if discloses(check):
<details><summary>${check.status.symbol}</summary><div class="detail">${check_detail(check)}</div></details>\
% else:
${check.status.symbol}\
% endif
</td>\
% endif
</%def>\
<%def name="check_detail(check)">
% if check.status != Status.PASSED and check.reason:
<p><b>${check.reason}</b></p>
% endif
% if check.revision:
<p>revision <code>${check.revision}</code></p>
% endif
% if check.findings:
<table class="findings"><thead><tr><th>kind</th><th>revision</th><th>finding</th><th>verdict</th></tr></thead><tbody>
% for finding in check.findings:
<tr><td>${finding.kind}</td><td>${finding.revision or "-"}</td><td>${finding.message}\
% if finding.detail:
<pre>${finding.detail.strip()}</pre>\
% endif
</td>\
% if finding.waived:
<td>waived: ${finding.waived}</td>\
% elif finding.blocking:
<td>blocking</td>\
% else:
<td>note</td>\
% endif
</tr>
% endfor
</tbody></table>
% endif
% if check.warnings:
<p>Warnings:</p><ul>
% for warning in check.warnings:
<li>${warning}</li>
% endfor
</ul>
% endif
% if own_detail(check):
<pre>${own_detail(check)}</pre>
% endif
</%def>\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${report.plugin.name} ${report.plugin.version}: compatibility</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; color: #1d1d1f; margin: 0; background: #f6f7f9; }
main { max-width: 1400px; margin: 0 auto; padding: 16px 20px 48px; box-sizing: border-box; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 28px 0 8px; }
.meta { color: #555; margin: 0 0 4px; } code { font-size: 13px; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid #d5d8dd; padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #eef0f3; font-weight: 600; font-size: 12px; }
#matrix { width: 100%; } #matrix td, #matrix th { padding: 4px 5px; }
#matrix th { font-size: 11.5px; } .nowrap { white-space: nowrap; } .scroll { overflow-x: auto; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
#matrix td.check { text-align: center; position: relative; }
.passed { background: #d9f2df; } .waived { background: #e9f3c9; } .failed { background: #fbd5d5; }
.error { background: #f6c7a8; } .not_run { background: #eceae4; color: #666; }
.status { font-weight: 600; white-space: nowrap; }
.badge { font-size: 11px; color: #fff; background: #6b7280; border-radius: 3px; padding: 0 4px; }
summary { cursor: pointer; font-weight: 600; list-style: none; }
summary::-webkit-details-marker { display: none; }
summary::before { content: "▸ "; } details[open] > summary::before { content: "▾ "; }
td.check summary { text-decoration: underline dotted; } td.check summary::before { content: none; }
.detail { position: absolute; z-index: 5; top: 100%; width: min(860px, 70vw);
  background: #fff; border: 1px solid #999; box-shadow: 0 6px 18px rgba(0,0,0,.25);
  padding: 8px 10px; text-align: left; font-weight: normal; }
td.left .detail { left: 0; } td.right .detail { right: 0; }
.findings { width: 100%; margin: 4px 0; } .findings td, .findings th { font-size: 12px; }
pre { white-space: pre-wrap; word-break: break-word; font-size: 12px; margin: 4px 0;
  max-height: 50vh; overflow: auto; }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 14px; }
.chart { background: #fff; border: 1px solid #d5d8dd; padding: 6px; }
.chart svg { width: 100%; height: auto; display: block; }
.slower { background: #fbd5d5; font-weight: 600; }
.note { color: #555; font-size: 13px; }
</style></head><body><main>
<h1>${report.plugin.name} ${report.plugin.version}:
<span class="${report.status}">&nbsp;${report.status.symbol} ${report.status}&nbsp;</span></h1>
<p class="meta">Plugin: <span id="provenance">${report.plugin.source.describe()}</span><br>
Wheel tested <code>${plugin_file}</code>\
% if report.plugin.wheel_sha256:
 (sha256 <code>${report.plugin.wheel_sha256}</code>)\
% endif
 · run <code>${report.run_id}</code>
started ${report.started_at} · matrix <code>${report.matrix_file}</code></p>

<h2>Compatibility matrix</h2>
<div class="scroll"><table id="matrix"><thead><tr><th>target</th><th>server</th>
<th>PostGIS</th><th>provider</th><th>status</th>
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
<td>${target.server_version or "-"}</td><td>${target.postgis_version or "-"}</td>
<td>${target.provider or "-"}</td>
<td class="status ${target.status}">\
% if target.reason:
<details><summary>${target.status.symbol} ${target.status}</summary><div class="detail"><pre>${target.reason}</pre></div></details>\
% else:
${target.status.symbol} ${target.status}\
% endif
</td>
% for index, name in enumerate(columns):
${check_cell(by_name.get(name), "left" if index < len(columns) / 2 else "right")}
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
<span class="${status}">&nbsp;${status.symbol} ${status}&nbsp;</span> \
% endfor
· click a mark for why it is not a pass, its findings and its warnings.</p>
% if timelines:
<h2 id="timeline">Revisions, one by one</h2>
<p class="note">Seconds each revision took on the way up, on the way down, and at scale
(<code>--scale</code>: every table filled before it ran), its longest lock on a table with
rows (in red, its longest lock that blocks reads and writes, when it took one, then its
longest lock of any mode when that is another), the tables it rewrote, and squawk's rules.</p>
% for target_id, rows in timelines.items():
<details open><summary><b>${target_id}</b>: ${len(rows)} revisions</summary>
% if target_id in timeline_charts:
<div class="chart">${timeline_charts[target_id] | n}</div>
% endif
<div class="scroll"><table class="timeline"><thead><tr><th>revision</th><th>up s</th>
<th>down s</th><th>changes</th><th>rows written</th><th>s at scale</th><th>rows</th>
<th>longest lock</th><th>rewrites</th><th>squawk</th></tr></thead><tbody>
% for row in rows:
<tr><td><code>${row.revision}</code></td>
<td class="num">${"" if row.up_s is None else format(row.up_s, ".3f")}</td>
<td class="num">${"" if row.down_s is None else format(row.down_s, ".3f")}</td>
<td class="note">${"; ".join(row.changes[:4])}${" …" if len(row.changes) > 4 else ""}</td>
<td class="note">${row.rows_written}</td>
<td class="num">${"" if row.scale_s is None else format(row.scale_s, ".3f")}</td>
<td class="num">${"" if row.rows is None else row.rows}</td>
<td><span class="${"failed" if row.exclusive else ""}">${"" if row.lock is None else describe(row.lock)}</span>${"" if row.longest is None else "; longest: " + describe(row.longest)}</td>
<td>${", ".join(row.rewrites)}</td>
<td class="note">${", ".join(sorted({hit.split(":")[0] for hit in row.lint}))}</td></tr>
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
