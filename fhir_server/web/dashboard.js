// The two-way referral dashboard: reads $referral-kpis (MeasureReports per member) and the
// members' names through the FHIR API, draws them with Apache ECharts (served by this
// server). Chinese first; English on the button.
"use strict";

const BASE = document.body.dataset.base;
const KPI = "http://alliance-fhir.org/fhir/CodeSystem/referral-kpi";
const TEXT = {
  zh: {
    title: "医联体双向转诊看板", period: "月份", language: "English", token: "访问令牌",
    members: "成员单位本月指标与排名", trend: "近12个月上转/下转趋势", flow: "成员间转诊流向",
    rank: "排名", member: "成员单位", grade: "等级", "up-sent": "上转(转出)",
    "up-received": "上转(接收)", "down-sent": "下转(转出)", "down-received": "下转(接收)",
    "down-up-ratio": "下转上转比", "green-channel": "绿色通道", "accept-median-minutes":
    "接受用时中位数(分)", "rejection-rate": "拒收率", up: "上转", down: "下转",
    loading: "加载中…", failed: "读取失败：", unauthorized: "需要访问令牌", sent: "转出",
    received: "接收", empty: "本月无转诊",
  },
  en: {
    title: "Two-way referral dashboard", period: "Month", language: "中文", token: "Access token",
    members: "Members this month, ranked", trend: "Upward / downward referrals, 12 months",
    flow: "Referrals between members", rank: "Rank", member: "Member", grade: "Grade",
    "up-sent": "Up sent", "up-received": "Up received", "down-sent": "Down sent",
    "down-received": "Down received", "down-up-ratio": "Down/up ratio",
    "green-channel": "Green channel", "accept-median-minutes": "Median min to accept",
    "rejection-rate": "Rejection rate", up: "Upward", down: "Downward", loading: "Loading…",
    failed: "Could not read: ", unauthorized: "An access token is needed", sent: "sent",
    received: "received", empty: "No referrals this month",
  },
};
const FIGURES = ["up-sent", "up-received", "down-sent", "down-received", "down-up-ratio",
                 "green-channel", "accept-median-minutes", "rejection-rate"];
let language = localStorage.getItem("dashboard-language") || "zh";
let token = sessionStorage.getItem("dashboard-token") || "";
const charts = {};

function t(key) { return TEXT[language][key] || key; }

function monthOf(date) {
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}`;
}

function monthsBefore(period, count) {
  const [year, month] = period.split("-").map(Number);
  const months = [];
  for (let back = count - 1; back >= 0; back -= 1) {
    months.push(monthOf(new Date(year, month - 1 - back, 1)));
  }
  return months;
}

async function read(url) {
  const headers = { Accept: "application/fhir+json" };
  if (token) { headers.Authorization = `Bearer ${token}`; }
  const answer = await fetch(url, { headers });
  if (answer.status === 401) {
    document.getElementById("token-box").hidden = false;
    throw new Error(t("unauthorized"));
  }
  if (!answer.ok) { throw new Error(`${url}: ${answer.status}`); }
  return answer.json();
}

function api(path) { return read(`${BASE}/${path}`); }

async function names() {
  const found = {};
  let page = await api("Organization?_count=1000&_elements=name");
  for (;;) {
    for (const entry of page.entry || []) {
      found[`Organization/${entry.resource.id}`] = entry.resource.name || entry.resource.id;
    }
    const next = (page.link || []).find((link) => link.relation === "next");
    if (!next) { return found; }
    page = await read(next.url);
  }
}

function figures(report) {
  const found = {};
  for (const group of report.group || []) {
    const code = group.code.coding.find((coding) => coding.system === KPI).code;
    found[code] = group.measureScore ? group.measureScore.value : null;
    if (code === "grade" && group.extension) { found.gradeText = group.extension[0].valueCoding.display; }
    if (group.stratifier) { found[`${code}-flows`] = group.stratifier[0].stratum; }
  }
  return found;
}

function shown(code, value) {
  if (value === null || value === undefined) { return "–"; }
  if (code === "rejection-rate") { return `${(value * 100).toFixed(1)}%`; }
  return String(value);
}

function table(reports, labels) {
  const rows = reports.map((report) => ({ member: report.subject.reference, ...figures(report) }));
  rows.sort((a, b) => (b.grade ?? -1) - (a.grade ?? -1)
    || (b["down-up-ratio"] ?? -1) - (a["down-up-ratio"] ?? -1));
  const head = document.querySelector("#members thead");
  head.innerHTML = "";
  const headRow = head.insertRow();
  for (const key of ["rank", "member", "grade", ...FIGURES]) {
    const cell = document.createElement("th");
    cell.textContent = t(key);
    headRow.appendChild(cell);
  }
  const body = document.querySelector("#members tbody");
  body.innerHTML = "";
  rows.forEach((row, index) => {
    const line = body.insertRow();
    line.dataset.member = row.member;
    line.insertCell().textContent = String(index + 1);
    line.insertCell().textContent = labels[row.member] || row.member;
    const grade = line.insertCell();
    grade.textContent = row.gradeText || "–";
    if (row.gradeText) { grade.className = `grade-${row.gradeText}`; }
    for (const code of FIGURES) { line.insertCell().textContent = shown(code, row[code]); }
  });
}

function chart(id) {
  if (!charts[id]) { charts[id] = echarts.init(document.getElementById(id)); }
  return charts[id];
}

function trend(months, totals) {
  chart("trend").setOption({
    tooltip: { trigger: "axis" },
    legend: { data: [t("up"), t("down")], top: 0 },
    grid: { left: 40, right: 16, top: 32, bottom: 28 },
    xAxis: { type: "category", data: months },
    yAxis: { type: "value", minInterval: 1 },
    series: [
      { name: t("up"), type: "line", data: totals.map((x) => x.up) },
      { name: t("down"), type: "line", data: totals.map((x) => x.down) },
    ],
  }, true);
}

function flow(reports, labels) {
  const nodes = new Map();
  const links = [];
  const node = (name) => { nodes.set(name, { name }); return name; };
  for (const report of reports) {
    const found = figures(report);
    for (const code of ["up-sent", "down-sent"]) {
      for (const stratum of found[`${code}-flows`] || []) {
        const from = labels[report.subject.reference] || report.subject.reference;
        const to = labels[stratum.value.text] || stratum.value.text;
        // senders and receivers are separate nodes: a Sankey needs no cycles
        links.push({ source: node(`${from} · ${t("sent")}`),
                     target: node(`${to} · ${t("received")}`),
                     value: stratum.measureScore.value });
      }
    }
  }
  chart("flow").setOption({
    tooltip: { trigger: "item" },
    title: links.length ? undefined : { text: t("empty"), left: "center", top: "middle",
                                          textStyle: { fontSize: 14, color: "#888" } },
    series: [{ type: "sankey", data: [...nodes.values()], links, left: 8, right: 170,
               emphasis: { focus: "adjacency" }, label: { fontSize: 11 } }],
  }, true);
}

function translate() {
  document.documentElement.lang = language === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const [id, key] of [["title", "title"], ["period-label", "period"], ["language", "language"],
    ["token-label", "token"], ["members-title", "members"], ["trend-title", "trend"],
    ["flow-title", "flow"]]) {
    document.getElementById(id).textContent = t(key);
  }
}

async function load() {
  const period = document.getElementById("period").value;
  const status = document.getElementById("status");
  status.textContent = t("loading");
  try {
    const labels = await names();
    const bundle = await api(`$referral-kpis?period=${period}`);
    const reports = (bundle.entry || []).map((entry) => entry.resource);
    table(reports, labels);
    flow(reports, labels);
    const months = monthsBefore(period, 12);
    const totals = await Promise.all(months.map(async (month) => {
      const answer = await api(`$referral-kpis?period=${month}`);
      const sum = { up: 0, down: 0 };
      for (const entry of answer.entry || []) {
        const found = figures(entry.resource);
        sum.up += found["up-sent"] || 0;
        sum.down += found["down-sent"] || 0;
      }
      return sum;
    }));
    trend(months, totals);
    status.textContent = "";
  } catch (error) {
    status.textContent = `${t("failed")}${error.message}`;
  }
}

function start() {
  const query = new URLSearchParams(window.location.search);
  const period = document.getElementById("period");
  period.value = query.get("period") || monthOf(new Date());
  if (query.get("lang") === "en" || query.get("lang") === "zh") { language = query.get("lang"); }
  translate();
  period.addEventListener("change", load);
  document.getElementById("language").addEventListener("click", () => {
    language = language === "zh" ? "en" : "zh";
    localStorage.setItem("dashboard-language", language);
    translate();
    load();
  });
  document.getElementById("token-apply").addEventListener("click", () => {
    token = document.getElementById("token").value.trim();
    sessionStorage.setItem("dashboard-token", token);
    document.getElementById("token-box").hidden = true;
    load();
  });
  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
  load();
}

start();
