#pragma once
// A small SVG chart writer (no dependencies): x axis, a left and an optional right y axis, line series with
// markers, and a text label per point. Enough for `eval compare`'s score-and-KLD plot.
#include <string>
#include <utility>
#include <vector>

namespace pocketlm {

struct SvgSeries {
  std::string name;
  std::string color;  // CSS colour, e.g. "#1f77b4"
  bool right_axis = false;
  bool dashed = false;
  bool markers_only = false;                      // a scatter: no line between the points
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in the given order
  std::vector<std::string> labels;                // one per point, or empty
};

struct SvgChart {
  std::string title, x_label, y_label, y2_label;
  std::vector<SvgSeries> series;
  int width = 820, height = 500;
};

std::string render_svg(const SvgChart& chart);

// "Nice" axis ticks covering [lo, hi] (steps of 1, 2 or 5 × 10^k); at least two ticks.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);
std::string xml_escape(const std::string& s);

}  // namespace pocketlm
