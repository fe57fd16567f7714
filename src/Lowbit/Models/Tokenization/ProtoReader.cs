using System.Buffers.Binary;
using System.Text;

namespace Lowbit.Models.Tokenization;

/// <summary>
/// Reads protobuf wire format field by field: <see cref="Next"/> yields the field number and wire type, then the
/// caller reads the value with the matching method or skips it. Only the wire types proto2 messages use
/// (varint, fixed64, length-delimited, fixed32) are accepted; anything else is an <see cref="InvalidDataException"/>.
/// </summary>
internal ref struct ProtoReader(ReadOnlySpan<byte> data)
{
    private readonly ReadOnlySpan<byte> _data = data;
    private int _position;

    public int Field { get; private set; }
    public int WireType { get; private set; }

    public bool Next()
    {
        if (_position >= _data.Length)
            return false;
        ulong key = ReadRawVarint();
        Field = (int)(key >> 3);
        WireType = (int)(key & 7);
        if (Field == 0)
            throw new InvalidDataException($"protobuf: field number 0 at byte {_position}");
        return true;
    }

    public long ReadVarint()
    {
        Expect(0);
        return (long)ReadRawVarint();
    }

    public float ReadFloat()
    {
        Expect(5);
        return BinaryPrimitives.ReadSingleLittleEndian(Take(4));
    }

    public ReadOnlySpan<byte> ReadBytes()
    {
        Expect(2);
        ulong length = ReadRawVarint();
        if (length > (ulong)(_data.Length - _position))
            throw new InvalidDataException($"protobuf: field {Field} claims {length} bytes, {_data.Length - _position} left");
        return Take((int)length);
    }

    public string ReadString() => Encoding.UTF8.GetString(ReadBytes());

    public void Skip()
    {
        switch (WireType)
        {
            case 0: ReadRawVarint(); break;
            case 1: Take(8); break;
            case 2: ReadBytes(); break;
            case 5: Take(4); break;
            default: throw new InvalidDataException($"protobuf: field {Field} has unsupported wire type {WireType}");
        }
    }

    private void Expect(int wireType)
    {
        if (WireType != wireType)
            throw new InvalidDataException($"protobuf: field {Field} has wire type {WireType}, expected {wireType}");
    }

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count > _data.Length - _position)
            throw new InvalidDataException($"protobuf: field {Field} is truncated at byte {_position}");
        ReadOnlySpan<byte> slice = _data.Slice(_position, count);
        _position += count;
        return slice;
    }

    private ulong ReadRawVarint()
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            byte b = Take(1)[0];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
                return value;
        }
        throw new InvalidDataException($"protobuf: varint longer than 10 bytes at byte {_position}");
    }
}
