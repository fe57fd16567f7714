using System.CommandLine;
using System.Text.Json;
using Lowbit.Models.Llama2c;
using Lowbit.Models.Tokenization;
using Lowbit.Tensors;

namespace Lowbit.Cli.Commands;

/// <summary><c>lowbit import llama2c</c>: a llama2.c checkpoint and tokenizer into a Hugging Face directory.</summary>
internal static class ImportCommand
{
    public static Command Create() => new("import", "Convert a checkpoint from another format into a Hugging Face model directory.")
    {
        Llama2c(),
    };

    private static Command Llama2c()
    {
        var model = new Argument<FileInfo>("model") { Description = "llama2.c checkpoint (.bin, run.c's legacy format)." };
        var tokenizer = new Option<FileInfo>("--tokenizer") { Description = "llama2.c tokenizer (.bin, run.c's format).", Required = true };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Directory to write (must not exist or be empty).", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "Dtype of the written tensors.", DefaultValueFactory = _ => "f32" };
        dtype.AcceptOnlyFromAmong("f32", "bf16", "f16");
        var force = new Option<bool>("--force") { Description = "Replace a non-empty output directory." };
        var command = new Command("llama2c", "Import a llama2.c checkpoint: config.json, model.safetensors, tokenizer.model, tokenizer_config.json.")
        {
            model, tokenizer, output, dtype, force,
        };
        command.SetAction(r => CommonOptions.Run(() =>
        {
            var modelFile = r.GetValue(model)!;
            var tokenizerFile = r.GetValue(tokenizer)!;
            foreach (var f in new[] { modelFile, tokenizerFile })
            {
                if (!f.Exists)
                    throw new FileNotFoundException($"{f.FullName} does not exist.");
            }
            var type = r.GetValue(dtype) switch { "bf16" => DType.BF16, "f16" => DType.F16, _ => DType.F32 };
            using var checkpoint = new Llama2cCheckpoint(modelFile.FullName);
            // Convert the tokenizer first: a bad tokenizer fails before gigabytes are written.
            byte[] sentencePiece = Llama2cTokenizerConverter.ToSentencePieceModel(tokenizerFile.FullName, checkpoint.Config.VocabSize);
            string outDir = r.GetValue(output)!.FullName;
            Console.WriteLine($"{modelFile.Name}: {checkpoint.Config}");
            Llama2cConverter.WriteHuggingFace(checkpoint, outDir, r.GetValue(force), temp =>
            {
                File.WriteAllBytes(Path.Combine(temp, TextTokenizer.SentencePieceFileName), sentencePiece);
                File.WriteAllText(Path.Combine(temp, "tokenizer_config.json"), TokenizerConfigJson);
            }, type);
            Console.WriteLine($"wrote {outDir} ({type})");
            return 0;
        }));
        return command;
    }

    /// <summary>llama2.c's tokenizers are SentencePiece BPE with &lt;s&gt; = 1 prepended and &lt;/s&gt; = 2.</summary>
    private static readonly string TokenizerConfigJson = JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["tokenizer_class"] = "LlamaTokenizer",
        ["add_bos_token"] = true,
        ["add_eos_token"] = false,
        ["bos_token"] = "<s>",
        ["eos_token"] = "</s>",
        ["unk_token"] = "<unk>",
    }, new JsonSerializerOptions { WriteIndented = true });
}
