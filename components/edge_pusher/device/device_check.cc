// imagepipe edge device-check: runs an edge bundle with the TFLite Micro C++ library.
//
// Built twice by components/edge_pusher/device_check.py, from the same source:
//  - the check program (IMAGEPIPE_CHECK): finds the smallest arena a plain MicroInterpreter runs the
//    model in (bisection), then runs every golden input in exactly that arena and prints the outputs;
//  - the minimal firmware (no IMAGEPIPE_CHECK): loads the model, allocates, invokes; no printing.
//    Only its size is measured: the flash (text + data) and static RAM a device needs.
// device_check_config.h (generated) names the bundle's model array and op resolver, the arena
// ceiling and, for the check program, the golden vectors.
#include <cstdint>
#include <cstring>

#include "device_check_config.h"
#include "tensorflow/lite/micro/micro_interpreter.h"

alignas(16) static uint8_t arena[IMAGEPIPE_ARENA_CEILING];

// Allocates and runs `count` inputs in the first `arena_size` bytes of the arena; writes the outputs.
static bool RunInArena(size_t arena_size, const int8_t* inputs, int count, int8_t* outputs) {
  IMAGEPIPE_OP_RESOLVER resolver;
  if (IMAGEPIPE_REGISTER_OPS(resolver) != kTfLiteOk) return false;
  tflite::MicroInterpreter interpreter(tflite::GetModel(IMAGEPIPE_MODEL_DATA), resolver, arena, arena_size);
  if (interpreter.AllocateTensors() != kTfLiteOk) return false;
  TfLiteTensor* input = interpreter.input(0);
  TfLiteTensor* output = interpreter.output(0);
  for (int i = 0; i < count; ++i) {
    std::memcpy(input->data.int8, inputs + i * input->bytes, input->bytes);
    if (interpreter.Invoke() != kTfLiteOk) return false;
    if (outputs != nullptr) std::memcpy(outputs + i * output->bytes, output->data.int8, output->bytes);
  }
  return true;
}

#ifdef IMAGEPIPE_CHECK
#include <cstdio>

int main() {
  static int8_t outputs[IMAGEPIPE_GOLDEN_COUNT * IMAGEPIPE_OUTPUT_BYTES];
  if (!RunInArena(sizeof(arena), &kGoldenInputs[0][0], 1, nullptr)) {
    std::printf("error: the model does not run in %u bytes (the arena ceiling)\n",
                static_cast<unsigned>(sizeof(arena)));
    return 2;
  }
  // Smallest working arena: `works` runs, `fails` does not.
  size_t fails = 0, works = sizeof(arena);
  while (works - fails > 1) {
    const size_t middle = fails + (works - fails) / 2;
    if (RunInArena(middle, &kGoldenInputs[0][0], 1, nullptr)) works = middle; else fails = middle;
  }
  std::printf("arena_bytes %u\n", static_cast<unsigned>(works));
  if (!RunInArena(works, &kGoldenInputs[0][0], IMAGEPIPE_GOLDEN_COUNT, outputs)) {
    std::printf("error: the golden inputs do not all run in %u bytes\n", static_cast<unsigned>(works));
    return 3;
  }
  for (int i = 0; i < IMAGEPIPE_GOLDEN_COUNT; ++i) {
    std::printf("golden %d:", i);
    for (int j = 0; j < IMAGEPIPE_OUTPUT_BYTES; ++j) std::printf(" %d", outputs[i * IMAGEPIPE_OUTPUT_BYTES + j]);
    std::printf("\n");
  }
  return 0;
}
#else
int main() {
  // A zero input, read through a volatile so that nothing is optimised away.
  static int8_t input[IMAGEPIPE_INPUT_BYTES];
  volatile bool ran = RunInArena(sizeof(arena), input, 1, nullptr);
  return ran ? 0 : 1;
}
#endif
