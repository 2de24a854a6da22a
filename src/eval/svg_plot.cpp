#include "eval/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace pocketlm {

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o.push_back(c);
    }
  }
  return o;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) {
    const double pad = lo == 0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / std::max(1, target - 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  std::vector<double> t;
  const double first = std::floor(lo / step + 1e-9) * step;
  for (int i = 0; i < 1000; ++i) {
    const double v = first + step * i;
    t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
    if (v >= hi - step * 1e-9 && t.size() >= 2) break;
  }
  return t;
}

namespace {

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

std::string tick_label(double v) {
  char b[32];
  const double a = std::fabs(v);
  if (a == 0) return "0";
  if (a >= 100)
    std::snprintf(b, sizeof b, "%.0f", v);
  else if (a >= 1)
    std::snprintf(b, sizeof b, "%.4g", v);
  else
    std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return lo > hi; }
};

}  // namespace

std::string render_svg(const SvgChart& c) {
  const double W = c.width, H = c.height;
  const double left = 70, right = 80, top = 50, bottom = 110;
  const double pw = W - left - right, ph = H - top - bottom;
  Range xr, yl, yr;
  for (const auto& s : c.series)
    for (const auto& [x, y] : s.points) {
      xr.add(x);
      (s.right_axis ? yr : yl).add(y);
    }
  if (xr.empty()) xr.add(0), xr.add(1);
  if (yl.empty()) yl.add(0), yl.add(1);
  const auto xt = nice_ticks(xr.lo, xr.hi), ylt = nice_ticks(yl.lo, yl.hi);
  const std::vector<double> yrt = yr.empty() ? std::vector<double>{} : nice_ticks(yr.lo, yr.hi);
  auto X = [&](double x) { return left + (x - xt.front()) / (xt.back() - xt.front()) * pw; };
  auto YL = [&](double y) { return top + ph - (y - ylt.front()) / (ylt.back() - ylt.front()) * ph; };
  auto YR = [&](double y) {
    return yrt.empty() ? 0.0 : top + ph - (y - yrt.front()) / (yrt.back() - yrt.front()) * ph;
  };

  std::string o;
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt(W) + "\" height=\"" + fmt(H) + "\" viewBox=\"0 0 " +
       fmt(W) + " " + fmt(H) + "\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"12\">\n";
  o += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o += "<text x=\"" + fmt(W / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">" +
       xml_escape(c.title) + "</text>\n";
  // Grid and ticks.
  for (double v : ylt) {
    o += "<line x1=\"" + fmt(left) + "\" x2=\"" + fmt(left + pw) + "\" y1=\"" + fmt(YL(v)) + "\" y2=\"" + fmt(YL(v)) +
         "\" stroke=\"#e5e5e5\"/>\n";
    o += "<text x=\"" + fmt(left - 6) + "\" y=\"" + fmt(YL(v) + 4) + "\" text-anchor=\"end\">" + tick_label(v) +
         "</text>\n";
  }
  for (double v : yrt)
    o += "<text x=\"" + fmt(left + pw + 6) + "\" y=\"" + fmt(YR(v) + 4) + "\" text-anchor=\"start\" fill=\"#555\">" +
         tick_label(v) + "</text>\n";
  for (double v : xt) {
    o += "<line x1=\"" + fmt(X(v)) + "\" x2=\"" + fmt(X(v)) + "\" y1=\"" + fmt(top + ph) + "\" y2=\"" +
         fmt(top + ph + 5) + "\" stroke=\"black\"/>\n";
    o += "<text x=\"" + fmt(X(v)) + "\" y=\"" + fmt(top + ph + 19) + "\" text-anchor=\"middle\">" + tick_label(v) +
         "</text>\n";
  }
  o += "<rect x=\"" + fmt(left) + "\" y=\"" + fmt(top) + "\" width=\"" + fmt(pw) + "\" height=\"" + fmt(ph) +
       "\" fill=\"none\" stroke=\"black\"/>\n";
  o += "<text x=\"" + fmt(left + pw / 2) + "\" y=\"" + fmt(top + ph + 40) + "\" text-anchor=\"middle\">" +
       xml_escape(c.x_label) + "</text>\n";
  o += "<text transform=\"translate(18," + fmt(top + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
       xml_escape(c.y_label) + "</text>\n";
  if (!yrt.empty())
    o += "<text transform=\"translate(" + fmt(W - 16) + "," + fmt(top + ph / 2) +
         ") rotate(90)\" text-anchor=\"middle\" fill=\"#555\">" + xml_escape(c.y2_label) + "</text>\n";
  // Series. Labels are placed where they overlap no label placed before (tried at vertical offsets growing
  // to 8 lines; width estimated at 6.2 px a character of the 11 px font); where every offset clashes, at the
  // first.
  struct Box {
    double x0, y0, x1, y1;
  };
  std::vector<Box> placed;
  auto place_label = [&](double x, double y, bool end_anchor, size_t chars) {
    const double w = 6.2 * static_cast<double>(chars);
    for (int k = 0; k <= 16; ++k) {  // 0, +12, -12, +24, -24, ... +-96
      const double dy = 12.0 * ((k + 1) / 2) * (k % 2 == 1 ? 1 : -1);
      const Box b{end_anchor ? x - w : x, y + dy - 10, end_anchor ? x : x + w, y + dy + 2};
      const bool clash = std::any_of(placed.begin(), placed.end(), [&](const Box& q) {
        return b.x0 < q.x1 && q.x0 < b.x1 && b.y0 < q.y1 && q.y0 < b.y1;
      });
      if (!clash) {
        placed.push_back(b);
        return y + dy;
      }
    }
    return y;
  };
  for (const auto& s : c.series) {
    auto Y = [&](double y) { return s.right_axis ? YR(y) : YL(y); };
    if (s.points.size() > 1 && !s.markers_only) {
      std::string pts;
      for (const auto& [x, y] : s.points) pts += fmt(X(x)) + "," + fmt(Y(y)) + " ";
      o += "<polyline points=\"" + pts + "\" fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"2\"" +
           (s.dashed ? " stroke-dasharray=\"6,4\"" : "") + "/>\n";
    }
    for (size_t i = 0; i < s.points.size(); ++i) {
      const double px = X(s.points[i].first), py = Y(s.points[i].second);
      if (s.right_axis)
        o += "<rect x=\"" + fmt(px - 5) + "\" y=\"" + fmt(py - 5) +
             "\" width=\"10\" height=\"10\" fill=\"white\" stroke=\"" + s.color + "\" stroke-width=\"2\"/>\n";
      else
        o += "<circle cx=\"" + fmt(px) + "\" cy=\"" + fmt(py) + "\" r=\"5\" fill=\"" + s.color + "\"/>\n";
      if (i < s.labels.size() && !s.labels[i].empty()) {
        // Left-axis labels above right of the point, right-axis labels below left (above left at the bottom
        // edge): the two series' labels do not collide.
        const double lx = s.right_axis ? px - 8 : px + 8;
        const double ly = place_label(lx, !s.right_axis ? py - 8 : (py + 18 > top + ph - 2 ? py - 8 : py + 18),
                                      s.right_axis, s.labels[i].size());
        o += "<text x=\"" + fmt(lx) + "\" y=\"" + fmt(ly) + "\" text-anchor=\"" + (s.right_axis ? "end" : "start") +
             "\" fill=\"" + s.color + "\" font-size=\"11\">" + xml_escape(s.labels[i]) + "</text>\n";
      }
    }
  }
  // Legend below the plot.
  double lx = left, ly = top + ph + 62;
  for (const auto& s : c.series) {
    const std::string name = xml_escape(s.name + (s.right_axis ? " (right axis)" : ""));
    const double w = 44 + 7.4 * static_cast<double>(name.size());
    if (lx + w > W - 10) {
      lx = left;
      ly += 18;
    }
    if (s.markers_only && s.right_axis)  // a scatter: its marker, not a line
      o += "<rect x=\"" + fmt(lx + 6) + "\" y=\"" + fmt(ly - 9) +
           "\" width=\"10\" height=\"10\" fill=\"white\" stroke=\"" + s.color + "\" stroke-width=\"2\"/>\n";
    else if (s.markers_only)
      o += "<circle cx=\"" + fmt(lx + 11) + "\" cy=\"" + fmt(ly - 4) + "\" r=\"5\" fill=\"" + s.color + "\"/>\n";
    else
      o += "<line x1=\"" + fmt(lx) + "\" x2=\"" + fmt(lx + 22) + "\" y1=\"" + fmt(ly - 4) + "\" y2=\"" + fmt(ly - 4) +
           "\" stroke=\"" + s.color + "\" stroke-width=\"2\"" + (s.dashed ? " stroke-dasharray=\"6,4\"" : "") + "/>\n";
    o += "<text x=\"" + fmt(lx + 27) + "\" y=\"" + fmt(ly) + "\">" + name + "</text>\n";
    lx += w;
  }
  o += "</svg>\n";
  return o;
}

}  // namespace pocketlm
