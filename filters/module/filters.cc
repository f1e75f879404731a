// The filter kinds libevmesh.so serves, by filter_name.
#include "filters/amqp/filter/amqp_filter.h"
#include "filters/common/envoy/module.h"
#include "filters/kafka/filter/kafka_filter.h"
#include "filters/nats/filter/nats_filter.h"

namespace evmesh {

const std::vector<FilterKind>& filter_kinds() {
  static const std::vector<FilterKind> kinds = {
      {"nats", &nats::make_nats_config},
      {"amqp", &amqp::make_amqp_config},
      {"kafka", &kafka::make_kafka_config},
  };
  return kinds;
}

}  // namespace evmesh
